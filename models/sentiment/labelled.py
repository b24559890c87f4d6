"""Labelled texts from an organization's own file: a CSV/TSV export with a text column and either a
sentiment label (negative / neutral / positive) or a rating on a known scale.

Files arrive from survey tools, CRM exports and spreadsheets, so the reader decides what it can decide
safely (a byte-order mark, UTF-8, the separator from the extension or the header line, HTML character
references such as `&#039;` that web forms leave in text) and refuses what it cannot, with a message that
says what to do (`--encoding`, `--separator`, `--rating-column`). Rows that cannot teach anything (empty,
non-text or non-English text, a missing label, a rating the scale does not define) are excluded and
counted by reason; nothing is dropped silently. Messages name columns, counts and line numbers, never a
value from the file: it holds patients' words.
"""

from __future__ import annotations

import codecs
import difflib
import html
import io
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from models.sentiment.models import LABELS
from models.sentiment.text import EMPTY, NOT_ENGLISH, NOT_TEXT, OK, text_status

KINDS = ("conversation_turn", "patient_message", "survey_comment")
"""The kinds of text gold scores (sentiment_message.kind)."""
ANY_KIND = "any"
"""A labelled file that stands for every kind of text."""
RATING_SCALES: dict[str, tuple[int, int, tuple[tuple[int, str], ...]]] = {
    # scale: (lowest, highest, (highest rating of each band, label)); NPS bands for 0-10
    "0-10": (0, 10, ((6, "negative"), (8, "neutral"), (10, "positive"))),
    "1-5": (1, 5, ((2, "negative"), (3, "neutral"), (5, "positive"))),
    # drugs.com-style 1-10 star ratings (Gräßer et al. 2018: 1-4 negative, 5-6 neutral, 7-10 positive)
    "1-10": (1, 10, ((4, "negative"), (6, "neutral"), (10, "positive"))),
}
"""Scales where the highest rating is the best. Each is also accepted written the other way round
(`5-1`, `10-1`, `10-0`): the same bands, mirrored, for forms where the lowest number is the best (the NHS
Friends and Family Test's 1 = very good ... 5 = very poor)."""
EXCLUSION_REASONS = {
    "text_empty": "the text is empty",
    "text_not_text": "the text has (almost) no letters",
    "text_not_english": "the text is not English",
    "label_missing": "the label is empty",
    "rating_missing": "the rating is empty",
    "rating_not_a_number": "the rating is not a number (e.g. a 'don't know' code)",
    "rating_not_whole": "the rating is not a whole number",
    "rating_outside_scale": "the rating is outside the scale",
}
_TEXT_REASONS = {EMPTY: "text_empty", NOT_TEXT: "text_not_text", NOT_ENGLISH: "text_not_english"}
_BOMS = (  # longest first: the UTF-32 LE mark begins with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_SEPARATORS = (",", "\t", ";", "|")
_HEADER_LINE = 1


class LabelledFileError(ValueError):
    """A labelled file that cannot be used as given; the message says why and what to do."""


@dataclass(frozen=True)
class LabelledTexts:
    """Usable labelled texts (`text`, `label`, `kind`) and what was excluded, by reason."""

    frame: pl.DataFrame
    rows_read: int
    excluded: dict[str, int]
    source: str
    labels_from: str  # "label column <name>" or "rating column <name> on the <scale> scale (<bands>)"
    rating_bands: dict[str, tuple[int, int]] | None = None  # label -> (from, to) when labels are ratings

    @property
    def weak(self) -> bool:
        """True when the labels come from ratings (weak labels), not from people who read the texts."""
        return self.rating_bands is not None

    def describe(self) -> str:
        """One line for a model card: where the labels came from and how many rows were used."""
        dropped = sum(self.excluded.values())
        return (
            f"{self.frame.height} labelled texts from {self.source} ({self.labels_from}); "
            f"{dropped} of {self.rows_read} rows excluded"
        )


def rating_scales() -> tuple[str, ...]:
    """Every scale name `--rating-scale` accepts: each scale and its reversed form."""
    return tuple(name for scale in RATING_SCALES for name in (scale, _reversed_name(scale)))


def _reversed_name(scale: str) -> str:
    low, high = scale.split("-")
    return f"{high}-{low}"


def _resolve(scale: str) -> tuple[int, int, tuple[tuple[int, str], ...], bool]:
    """(lowest, highest, bands on the best-is-highest reading, reversed) of a scale name."""
    if scale in RATING_SCALES:
        return (*RATING_SCALES[scale], False)
    forward = _reversed_name(scale) if scale.count("-") == 1 else ""
    if forward in RATING_SCALES:
        return (*RATING_SCALES[forward], True)
    raise LabelledFileError(f"unknown rating scale {scale!r}: use one of {', '.join(rating_scales())}")


def rating_bands(scale: str) -> dict[str, tuple[int, int]]:
    """The ratings of each label on `scale` as (from, to), in the scale's own numbers: on `5-1`,
    positive is (1, 2) and negative (4, 5)."""
    low, high, bands, reversed_ = _resolve(scale)
    found: dict[str, tuple[int, int]] = {}
    start = low
    for top, label in bands:
        first, last = (low + high - top, low + high - start) if reversed_ else (start, top)
        found[label] = (first, last)
        start = top + 1
    return found


def describe_bands(scale: str) -> str:
    """How ratings on `scale` become labels, in words: `5-1 scale (1 is best): 1-2 positive, 3 neutral,
    4-5 negative`."""
    low, high, _, reversed_ = _resolve(scale)
    bands = sorted(rating_bands(scale).items(), key=lambda item: item[1])
    words = ", ".join(f"{a}-{b} {label}" if a != b else f"{a} {label}" for label, (a, b) in bands)
    return f"{scale} scale ({low if reversed_ else high} is best): {words}"


def rating_label(rating: pl.Expr, scale: str = "0-10") -> pl.Expr:
    """The weak label of a whole rating on `scale` (null outside it); a reversed scale (`5-1`) is read
    mirrored onto its forward form, so 1 is the best rating there."""
    low, high, bands, reversed_ = _resolve(scale)
    if reversed_:
        rating = pl.when((rating >= low) & (rating <= high)).then(low + high - rating)
    expression = pl.when(rating < low).then(pl.lit(None, dtype=pl.String))
    for top, label in bands:
        expression = expression.when(rating <= top).then(pl.lit(label))
    return expression.otherwise(pl.lit(None, dtype=pl.String))


def decode(raw: bytes, name: str, encoding: str | None = None) -> str:
    """The file's text: the given encoding, else the one its byte-order mark names, else UTF-8."""
    if raw.startswith(b"PK\x03\x04"):
        raise LabelledFileError(f"{name} is a zip file (an Excel workbook?): save it as CSV (UTF-8) first")
    if encoding is None:
        encoding = next((codec for bom, codec in _BOMS if raw.startswith(bom)), "utf-8")
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise LabelledFileError(f"unknown encoding {encoding!r}") from None
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        hint = (
            "it looks like UTF-16 without a byte-order mark: pass --encoding utf-16-le (or utf-16-be)"
            if raw[:2000].count(b"\x00") > len(raw[:2000]) // 4
            else "pass --encoding with the file's encoding (cp1252 for most Excel exports on Windows, "
            "latin-1, utf-16)"
        )
        raise LabelledFileError(
            f"{name} is not valid {encoding} (byte 0x{raw[error.start]:02x} on line {line}); {hint}"
        ) from None
    if "\x00" in text:
        raise LabelledFileError(
            f"{name} holds NUL characters when read as {encoding}: pass --encoding with the file's encoding "
            "(utf-16 for many 'Unicode text' exports)"
        )
    return text.removeprefix("\ufeff")


def guess_separator(path: Path, text: str) -> str:
    """Tab for .tsv/.tab files, else the most frequent of , tab ; | on the header line (comma if none)."""
    if path.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    header = text.split("\n", 1)[0]
    counts = {separator: header.count(separator) for separator in _SEPARATORS}
    best = max(counts, key=lambda separator: counts[separator])
    return best if counts[best] else ","


def read_table_file(
    path: Path, encoding: str | None = None, separator: str | None = None
) -> tuple[pl.DataFrame, str]:
    """Every column of a CSV/TSV file as strings, and the separator used."""
    if not path.is_file():
        raise LabelledFileError(f"input file not found: {path}")
    text = decode(path.read_bytes(), path.name, encoding)
    if not text.strip():
        raise LabelledFileError(f"{path.name} is empty")
    separator = separator if separator is not None else guess_separator(path, text)
    if len(separator) != 1:
        raise LabelledFileError(f"the separator must be one character, not {len(separator)}")
    try:
        frame = pl.read_csv(
            io.BytesIO(text.encode("utf-8")),
            separator=separator,
            infer_schema_length=0,
            quote_char='"',
        )
    except (pl.exceptions.PolarsError, OSError) as error:  # polars' message may quote a row: not shown
        raise LabelledFileError(
            f"{path.name} cannot be read as a table separated by {_shown(separator)} "
            f"({type(error).__name__}): check --separator and the file's quoting"
        ) from None
    return frame, separator


def labelled_texts(
    frame: pl.DataFrame,
    source: str,
    text_column: str,
    *,
    label_column: str | None = None,
    rating_column: str | None = None,
    rating_scale: str = "0-10",
    kind: str = ANY_KIND,
) -> LabelledTexts:
    """The usable labelled texts of a table read with `read_table_file`."""
    if (label_column is None) == (rating_column is None):
        raise LabelledFileError("give either a label column or a rating column (exactly one)")
    if kind != ANY_KIND and kind not in KINDS:
        raise LabelledFileError(f"unknown kind {kind!r}: use {ANY_KIND} or one of {', '.join(KINDS)}")
    _resolve(rating_scale)  # an unknown scale is refused before anything is read
    for role, column in (("text", text_column), ("label", label_column), ("rating", rating_column)):
        if column is not None and column not in frame.columns:
            raise LabelledFileError(_missing_column(role, column, source, frame.columns))
    texts = clean_texts(frame[text_column])
    status = text_status(texts)
    data = pl.DataFrame({"text": texts, "_status": status})
    if label_column is not None:
        labels, problems = _given_labels(frame[label_column], source, label_column)
        labels_from = f"label column {label_column}"
    else:
        labels, problems = _rating_labels(frame[rating_column], rating_scale)
        labels_from = f"rating column {rating_column} on the {describe_bands(rating_scale)}"
    data = data.with_columns(pl.Series("label", labels, dtype=pl.String), pl.Series("_problem", problems))
    reason = (
        pl.when(pl.col("_status") != OK)
        .then(pl.col("_status").replace_strict(_TEXT_REASONS, default=None, return_dtype=pl.String))
        .otherwise(pl.col("_problem"))
    )
    data = data.with_columns(reason.alias("_reason"))
    excluded = dict(data.drop_nulls("_reason").group_by("_reason").len().sort("_reason").iter_rows())
    usable = data.filter(pl.col("_reason").is_null())
    if not usable.height:
        counts = "; ".join(f"{count} rows: {EXCLUSION_REASONS[r]}" for r, count in excluded.items())
        raise LabelledFileError(f"{source} has no usable labelled text ({counts or 'no rows'})")
    return LabelledTexts(
        frame=usable.select("text", "label", pl.lit(kind).alias("kind")),
        rows_read=frame.height,
        excluded={str(k): int(v) for k, v in excluded.items()},
        source=source,
        labels_from=labels_from,
        rating_bands=None if rating_column is None else rating_bands(rating_scale),
    )


def read_labelled_file(
    path: Path,
    text_column: str,
    *,
    label_column: str | None = None,
    rating_column: str | None = None,
    rating_scale: str = "0-10",
    kind: str = ANY_KIND,
    encoding: str | None = None,
    separator: str | None = None,
) -> LabelledTexts:
    """Read a labelled CSV/TSV file (see the module's docstring for what is decided and refused)."""
    frame, _ = read_table_file(path, encoding, separator)
    return labelled_texts(
        frame,
        path.name,
        text_column,
        label_column=label_column,
        rating_column=rating_column,
        rating_scale=rating_scale,
        kind=kind,
    )


def clean_texts(texts: pl.Series) -> pl.Series:
    """Texts with HTML character references decoded and surrounding whitespace and quotes removed: what
    training, evaluating and scoring read, so a model scores texts the way it learnt them."""
    texts = texts.cast(pl.String)
    escaped = texts.str.contains("&", literal=True).fill_null(False)
    if escaped.any():  # only the texts that hold an '&' go through the standard library's decoder
        texts = texts.scatter(escaped.arg_true(), [html.unescape(t) for t in texts.filter(escaped).to_list()])
    return texts.str.strip_chars(' \t\r\n"').rename("text")


def _given_labels(column: pl.Series, source: str, name: str) -> tuple[pl.Series, pl.Series]:
    """Labels (negative/neutral/positive, any case) and a reason for rows without one; any other value is
    an error, since dropping it would skew the classes."""
    labels = column.cast(pl.String).str.strip_chars().str.to_lowercase()
    labels = pl.select(pl.when(labels == "").then(None).otherwise(labels)).to_series()
    unknown = labels.is_not_null() & ~labels.is_in(list(LABELS))
    if unknown.any():
        lines = (unknown.arg_true() + _HEADER_LINE + 1).head(3).to_list()
        distinct = labels.filter(unknown).n_unique()
        numeric = labels.filter(unknown).cast(pl.Float64, strict=False).is_not_null().all()
        hint = (
            "they look like ratings: pass --rating-column with --rating-scale instead"
            if numeric
            else f"use {', '.join(LABELS)} (any case), or map them first"
        )
        raise LabelledFileError(
            f"{source}: {int(unknown.sum())} rows of column {name!r} hold {distinct} label value(s) "
            f"other than {'/'.join(LABELS)} (first on lines {', '.join(map(str, lines))}); {hint}"
        )
    problem = pl.select(pl.when(labels.is_null()).then(pl.lit("label_missing"))).to_series()
    return labels, problem


def _rating_labels(column: pl.Series, scale: str) -> tuple[pl.Series, pl.Series]:
    """Labels from ratings on `scale`, and a reason for ratings the scale does not define."""
    low, high, _, _ = _resolve(scale)
    raw = column.cast(pl.String).str.strip_chars()
    frame = pl.DataFrame({"raw": raw}).with_columns(
        pl.col("raw").cast(pl.Float64, strict=False).alias("value")
    )
    value = pl.col("value")
    problem = (
        pl.when(pl.col("raw").is_null() | (pl.col("raw") == ""))
        .then(pl.lit("rating_missing"))
        .when(value.is_null() | value.is_nan())
        .then(pl.lit("rating_not_a_number"))
        .when(value != value.round(0))
        .then(pl.lit("rating_not_whole"))
        .when((value < low) | (value > high))
        .then(pl.lit("rating_outside_scale"))
    )
    result = frame.select(
        pl.when(problem.is_null()).then(rating_label(value, scale)).alias("label"), problem.alias("problem")
    )
    return result["label"], result["problem"]


def _missing_column(role: str, column: str, source: str, columns: list[str]) -> str:
    """The message for a missing column: the file's header is not echoed (a headerless file's first row
    is patient text), only a near match to the name asked for."""
    close = difflib.get_close_matches(column, columns, n=1, cutoff=0.6)
    close += [c for c in columns if c.strip().lower() == column.strip().lower() and c not in close]
    hint = f"; did you mean {close[0]!r}?" if close else "; check the header (line 1) and --separator"
    return f"{source} has no {role} column {column!r} among its {len(columns)} columns{hint}"


def _shown(separator: str) -> str:
    return {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}.get(separator, repr(separator))
