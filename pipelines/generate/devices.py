"""Remote patient monitoring: enrolment, Open mHealth data points and iHealth-style payloads.

About 20% of adults are enrolled (more among people with hypertension, diabetes or heart failure),
each with one or two devices from one vendor: the hospital's Open mHealth app ("omh_app") or iHealth.
Readings follow the person's own control (a hypertensive with uncontrolled blood pressure sends high
readings), come with adherence gaps (whole weeks without readings), mixed units (kg/lb, mg/dL/mmol/L,
chosen per user as the apps do) and about 0.5% implausible values (systolic 300, a 5 kg adult...).

iHealth payloads follow the vendor API: one file per endpoint and user (bp.json, weight.json,
glucose.json), units given once per payload as the API's integer codes (BPUnit 0 = mmHg; WeightUnit
0 = kg, 1 = lb; BGUnit 0 = mg/dL, 1 = mmol/L), `MDate` is the measurement's *local* wall-clock time
written as epoch seconds (the API's convention; `TimeZone` gives the offset) while `LastChangeTime` is
a true UTC epoch. A vendor sync job delivers everything it pulled as one page, so the paging fields
say page 1 of 1. Some users have empty lists (enrolled, never synced).

A very small number of readings belong to device accounts that are in no enrolment row (a family
member's account, a test device); they are counted in the truth summary as orphan readings.
"""

from __future__ import annotations

import random
from pathlib import Path

import orjson

from pipelines.generate import texts
from pipelines.generate.bulk_writer import Counters, EnrolmentCsv, JsonLinesSink, write_files
from pipelines.generate.clinical import Profile
from pipelines.generate.clock import DAY, HOUR, MINUTE, Clock
from pipelines.generate.defects import Defects
from pipelines.generate.population import Person
from pipelines.generate.rng import clamp, hex_id, new_uuid, rint, rstep
from pipelines.generate.truth import Truth
from pipelines.generate.vocab import Json

IMPLAUSIBLE_RATE = 0.005
ORPHAN_RATE = 0.002
MAX_READING_DAYS = 540
OMH_APPS = {
    "blood_pressure_monitor": "CuffMate Home BP",
    "glucometer": "GlucoLog",
    "weight_scale": "ScaleSync",
    "activity_tracker": "StepWise",
}
_SCHEMAS = {
    "blood-pressure": {"namespace": "omh", "name": "blood-pressure", "version": "4.0"},
    "heart-rate": {"namespace": "omh", "name": "heart-rate", "version": "2.0"},
    "body-weight": {"namespace": "omh", "name": "body-weight", "version": "2.0"},
    "blood-glucose": {"namespace": "omh", "name": "blood-glucose", "version": "3.0"},
    "step-count": {"namespace": "omh", "name": "step-count", "version": "3.0"},
}
_MEAL_OMH = {
    "morning": ("fasting", "fasting", "before breakfast", "after breakfast"),
    "midday": ("before lunch", "after lunch"),
    "evening": ("before dinner", "after dinner", "after dinner"),
}
_MEAL_IHEALTH = {
    "morning": ("Before_breakfast", "Before_breakfast", "After_breakfast"),
    "midday": ("Before_lunch", "After_lunch"),
    "evening": ("Before_dinner", "After_dinner", "At_midnight"),
}
MMOL_PER_MGDL = 1 / 18.0
LB_PER_KG = 2.20462


class DeviceFeeds:
    """Writes enrolment rows, OMH data points and iHealth payloads person by person."""

    def __init__(
        self, landing: Path, clock: Clock, defects: Defects, truth: Truth, counters: Counters
    ) -> None:
        self.landing = landing
        self.clock = clock
        self.truth = truth
        self.counters = counters
        self.enrolment = EnrolmentCsv(landing, defects, truth)
        self.omh = JsonLinesSink(
            landing, "devices_omh", "devices_omh", "datapoints", ("header", "id"), defects, truth
        )
        self.implausible = 0
        self.orphan_readings = 0
        self.enrolled = 0

    # --- per person ---------------------------------------------------------------------------------
    def generate(self, rng: random.Random, person: Person, p: Profile) -> None:
        """Maybe enrol `person` and write their readings."""
        clock = self.clock
        if rng.random() < ORPHAN_RATE:
            self._orphan(rng, p)
        if person.age < 18:
            return
        chance = 0.12 + 0.13 * p.has("hypertension") + 0.16 * bool(p.dm_control) + 0.3 * p.has("chf")
        if rng.random() >= chance:
            return
        end_limit = person.death_ts - DAY if person.death_ts else clock.history_end
        earliest = max(clock.window_start, end_limit - 730 * DAY)
        if end_limit - earliest < 20 * DAY:
            return
        enrolled = rint(rng, earliest, end_limit - 14 * DAY)
        unenrolled = None
        if person.death_ts:
            unenrolled = person.death_ts
        elif rng.random() < 0.22:
            unenrolled = min(enrolled + rint(rng, 30, 400) * DAY, clock.history_end - DAY)
        types = []
        if p.has("hypertension") or p.has("chf"):
            types.append("blood_pressure_monitor")
        if p.dm_control:
            types.append("glucometer")
        if p.has("chf") or p.has("obesity"):
            types.append("weight_scale")
        if not types:
            types.append(rng.choice(("blood_pressure_monitor", "weight_scale", "activity_tracker")))
        rng.shuffle(types)
        types = types[: 1 if rng.random() < 0.6 else 2]
        vendor = "ihealth" if rng.random() < 0.45 else "omh_app"
        if vendor == "ihealth":
            types = [t if t != "activity_tracker" else "blood_pressure_monitor" for t in types]
            types = list(dict.fromkeys(types))
        user = hex_id(rng, 32) if vendor == "ihealth" else f"omh-{hex_id(rng, 16)}"
        source = (
            person.sources[0] if len(person.sources) == 1 else ("ehr_a" if rng.random() < 0.75 else "ehr_b")
        )
        self.enrolled += 1
        adherence = rng.betavariate(3, 2)
        wants_lb = rng.random() < 0.7
        wants_mmol = rng.random() < 0.1
        synced = vendor != "ihealth" or rng.random() > 0.1
        readings: dict[str, list[Json]] = {"bp": [], "weight": [], "glucose": []}
        for device_type in types:
            device_id = _device_id(rng, vendor, device_type)
            self.enrolment.emit(
                [
                    vendor,
                    user,
                    device_id,
                    device_type,
                    source,
                    person.ids[source],
                    clock.date(enrolled),
                    clock.date(unenrolled) if unenrolled else "",
                ]
            )
            if not synced:
                continue
            stop = min(unenrolled or clock.history_end, clock.history_end, enrolled + MAX_READING_DAYS * DAY)
            for at in _reading_times(rng, enrolled + DAY, stop, adherence, device_type):
                if vendor == "omh_app":
                    self._omh_reading(rng, p, device_type, device_id, user, at, wants_lb, wants_mmol)
                else:
                    self._ihealth_reading(rng, p, device_type, at, wants_mmol, readings)
        if vendor == "ihealth":
            self._ihealth_files(user, readings, wants_lb, wants_mmol)

    def _orphan(self, rng: random.Random, p: Profile) -> None:
        """Readings from a device account that no enrolment row knows."""
        start = self.clock.history_end - rint(rng, 30, 300) * DAY
        stop = start + rint(rng, 5, 20) * DAY
        if rng.random() < 0.5:
            user, device_id = f"omh-{hex_id(rng, 16)}", _device_id(rng, "omh_app", "blood_pressure_monitor")
            for at in _reading_times(rng, start, stop, 0.7, "blood_pressure_monitor"):
                self._omh_reading(rng, p, "blood_pressure_monitor", device_id, user, at, True, False)
                self.orphan_readings += 2
        else:
            readings: dict[str, list[Json]] = {"bp": [], "weight": [], "glucose": []}
            for at in _reading_times(rng, start, stop, 0.7, "blood_pressure_monitor"):
                self._ihealth_reading(rng, p, "blood_pressure_monitor", at, False, readings)
            self.orphan_readings += len(readings["bp"])
            self._ihealth_files(hex_id(rng, 32), readings, False, False)

    # --- values -------------------------------------------------------------------------------------
    def _implausible(self, rng: random.Random) -> bool:
        if rng.random() < IMPLAUSIBLE_RATE:
            self.implausible += 1
            return True
        return False

    def _bp_values(self, rng: random.Random, p: Profile) -> tuple[int, int, int]:
        sbp = round(clamp(rng.gauss(p.sbp_base - 4, 10), 80, 220))
        dbp = round(clamp(rng.gauss(p.dbp_base - 2, 7), 45, 130))
        if dbp >= sbp - 15:
            dbp = sbp - 20
        hr = round(clamp(rng.gauss(74, 9), 45, 140))
        if self._implausible(rng):
            sbp, dbp, hr = rng.choice(((300, 180, hr), (40, 20, hr), (sbp, dbp, 250), (sbp, 0, hr)))
        return sbp, dbp, hr

    def _glucose_mgdl(self, rng: random.Random, p: Profile, fasting: bool) -> float:
        if p.dm_control:
            mean = 28.7 * p.a1c_base - 46.7 - (20 if fasting else -25)
            value = clamp(rng.gauss(mean, 30), 45, 480)
        else:
            value = clamp(rng.gauss(92 if fasting else 118, 12), 60, 200)
        if self._implausible(rng):
            value = rng.choice((900.0, 1.0, 2000.0))
        return value

    def _weight_kg(self, rng: random.Random, p: Profile, at: int) -> float:
        years_back = (self.clock.now - at) / (365.25 * DAY)
        value = clamp(p.weight_kg - p.weight_trend * years_back + rng.gauss(0, 0.6), 30, 260)
        if self._implausible(rng):
            value = rng.choice((5.0, 0.5, 850.0))
        return value

    def _part_of_day(self, at: int) -> str:
        hour = (at + self.clock.offset(at)) % DAY // HOUR
        return "morning" if hour < 11 else "midday" if hour < 17 else "evening"

    # --- Open mHealth -------------------------------------------------------------------------------
    def _omh_point(
        self,
        rng: random.Random,
        schema: str,
        body: Json,
        device_type: str,
        device_id: str,
        user: str,
        at: int,
    ) -> None:
        self.omh.emit(
            {
                "header": {
                    "id": new_uuid(rng),
                    "creation_date_time": self.clock.instant(at + rint(rng, MINUTE, 12 * HOUR)),
                    "schema_id": _SCHEMAS[schema],
                    "acquisition_provenance": {
                        "source_name": OMH_APPS[device_type],
                        "modality": "sensed",
                        "device_id": device_id,
                    },
                    "user_id": user,
                },
                "body": body,
            }
        )

    def _omh_reading(
        self,
        rng: random.Random,
        p: Profile,
        device_type: str,
        device_id: str,
        user: str,
        at: int,
        wants_lb: bool,
        wants_mmol: bool,
    ) -> None:
        when = {"date_time": self.clock.dt(at)}
        if device_type == "blood_pressure_monitor":
            sbp, dbp, hr = self._bp_values(rng, p)
            body = {
                "systolic_blood_pressure": {"value": sbp, "unit": "mmHg"},
                "diastolic_blood_pressure": {"value": dbp, "unit": "mmHg"},
                "effective_time_frame": when,
            }
            if rng.random() < 0.3:
                body["body_posture"] = "sitting"
            self._omh_point(rng, "blood-pressure", body, device_type, device_id, user, at)
            self._omh_point(
                rng,
                "heart-rate",
                {"heart_rate": {"value": hr, "unit": "beats/min"}, "effective_time_frame": when},
                device_type,
                device_id,
                user,
                at,
            )
        elif device_type == "glucometer":
            meal = rng.choice(_MEAL_OMH[self._part_of_day(at)])
            mgdl = self._glucose_mgdl(rng, p, meal in ("fasting", "before breakfast"))
            value = (
                {"value": round(mgdl * MMOL_PER_MGDL, 1), "unit": "mmol/L"}
                if wants_mmol
                else {"value": round(mgdl), "unit": "mg/dL"}
            )
            self._omh_point(
                rng,
                "blood-glucose",
                {
                    "blood_glucose": value,
                    "effective_time_frame": when,
                    "temporal_relationship_to_meal": meal,
                    "specimen_source": "capillary blood",
                },
                device_type,
                device_id,
                user,
                at,
            )
        elif device_type == "weight_scale":
            kg = self._weight_kg(rng, p, at)
            value = (
                {"value": round(kg * LB_PER_KG, 1), "unit": "lb"}
                if wants_lb
                else {"value": round(kg, 1), "unit": "kg"}
            )
            self._omh_point(
                rng,
                "body-weight",
                {"body_weight": value, "effective_time_frame": when},
                device_type,
                device_id,
                user,
                at,
            )
        else:
            day_start = at - (at + self.clock.offset(at)) % DAY
            steps = round(clamp(rng.gauss(6500, 2600), 150, 30000))
            if self._implausible(rng):
                steps = rng.choice((150000, 0, 99999))
            interval = {
                "time_interval": {
                    "start_date_time": self.clock.dt(day_start),
                    "end_date_time": self.clock.dt(day_start + DAY - 1),
                }
            }
            self._omh_point(
                rng,
                "step-count",
                {"step_count": {"value": steps, "unit": "steps"}, "effective_time_frame": interval},
                device_type,
                device_id,
                user,
                at,
            )
            resting = round(clamp(rng.gauss(66, 7), 40, 110))
            self._omh_point(
                rng,
                "heart-rate",
                {
                    "heart_rate": {"value": resting, "unit": "beats/min"},
                    "effective_time_frame": when,
                    "temporal_relationship_to_sleep": "on waking",
                },
                device_type,
                device_id,
                user,
                at,
            )

    # --- iHealth ------------------------------------------------------------------------------------
    def _ihealth_common(self, rng: random.Random, at: int) -> Json:
        return {
            "DataID": hex_id(rng, 32),
            "DataSource": "FromDevice" if rng.random() < 0.9 else "Manual",
            "LastChangeTime": at + rint(rng, MINUTE, 30 * HOUR),
            "MDate": at + self.clock.offset(at),
            "Note": rng.choice(texts.DEVICE_NOTES),
            "TimeZone": self.clock.tz_compact(at),
        }

    def _ihealth_reading(
        self,
        rng: random.Random,
        p: Profile,
        device_type: str,
        at: int,
        wants_mmol: bool,
        readings: dict[str, list[Json]],
    ) -> None:
        common = self._ihealth_common(rng, at)
        if device_type == "blood_pressure_monitor":
            sbp, dbp, hr = self._bp_values(rng, p)
            level = (
                1 if sbp < 120 and dbp < 80 else 2 if sbp < 130 else 3 if sbp < 140 else 4 if sbp < 160 else 5
            )
            readings["bp"].append(
                {
                    "BPL": level,
                    "DataID": common["DataID"],
                    "DataSource": common["DataSource"],
                    "HP": sbp,
                    "HR": hr,
                    "IsArr": 0 if rng.random() < 0.97 else 1,
                    "LP": dbp,
                    "LastChangeTime": common["LastChangeTime"],
                    "Lat": -1,
                    "Lon": -1,
                    "MDate": common["MDate"],
                    "Note": common["Note"],
                    "TimeZone": common["TimeZone"],
                }
            )
        elif device_type == "glucometer":
            meal = rng.choice(_MEAL_IHEALTH[self._part_of_day(at)])
            mgdl = self._glucose_mgdl(rng, p, meal == "Before_breakfast")
            value = round(mgdl * MMOL_PER_MGDL, 1) if wants_mmol else round(mgdl)
            readings["glucose"].append(
                {
                    "BG": value,
                    "DataID": common["DataID"],
                    "DataSource": common["DataSource"],
                    "DinnerSituation": meal,
                    "DrugSituation": "Before_taking_pills" if rng.random() < 0.5 else "After_taking_pills",
                    "LastChangeTime": common["LastChangeTime"],
                    "Lat": -1,
                    "Lon": -1,
                    "MDate": common["MDate"],
                    "Note": common["Note"],
                    "TimeZone": common["TimeZone"],
                }
            )
        elif device_type == "weight_scale":
            kg = self._weight_kg(rng, p, at)
            bmi = round(kg / (p.height_cm / 100) ** 2, 2)
            readings["weight"].append(
                {
                    "BMI": bmi,
                    "BoneValue": 0,
                    "DCI": 0,
                    "DataID": common["DataID"],
                    "DataSource": common["DataSource"],
                    "FatValue": round(clamp(rng.gauss(30, 6), 8, 55), 1),
                    "LastChangeTime": common["LastChangeTime"],
                    "MDate": common["MDate"],
                    "MuscaleValue": 0,
                    "Note": common["Note"],
                    "TimeZone": common["TimeZone"],
                    "WaterValue": round(clamp(rng.gauss(50, 5), 30, 70), 1),
                    "WeightValue": kg,
                }
            )

    def _ihealth_files(
        self, user: str, readings: dict[str, list[Json]], wants_lb: bool, wants_mmol: bool
    ) -> None:
        files: list[tuple[str, bytes]] = []
        weights = readings["weight"]
        for item in weights:
            item["WeightValue"] = round(item["WeightValue"] * (LB_PER_KG if wants_lb else 1.0), 2)
        for name, list_key, unit_key, unit, items in (
            ("bp.json", "BPDataList", "BPUnit", 0, readings["bp"]),
            ("weight.json", "WeightDataList", "WeightUnit", 1 if wants_lb else 0, weights),
            ("glucose.json", "BGDataList", "BGUnit", 1 if wants_mmol else 0, readings["glucose"]),
        ):
            n = len(items)
            payload = {
                list_key: items,
                unit_key: unit,
                "CurrentRecordCount": n,
                "NextPageUrl": "",
                "PageLength": max(50, n),
                "PageNumber": 1,
                "PrevPageUrl": "",
                "RecordCount": n,
            }
            data = orjson.dumps(payload)
            files.append((name, data))
            rel = f"devices_ihealth/{user}/{name}"
            self.truth.file_records(rel, n)
            self.counters.files += 1
            self.counters.bytes += len(data)
            self.counters.add_records("devices_ihealth", n)
        write_files(self.landing / "devices_ihealth" / user, files, make_folder=True)

    def finish(self) -> dict[str, int]:
        """Close the enrolment CSV and OMH files; records per file."""
        files = self.enrolment.finish(self.counters)
        files.update(self.omh.finish(self.counters))
        return files


def _device_id(rng: random.Random, vendor: str, device_type: str) -> str:
    if vendor == "ihealth":
        return f"004D32{hex_id(rng, 6).upper()}"
    prefix = {
        "blood_pressure_monitor": "BP",
        "glucometer": "GL",
        "weight_scale": "WS",
        "activity_tracker": "AT",
    }
    return f"OMH-{prefix[device_type]}-{hex_id(rng, 10).upper()}"


def _reading_times(
    rng: random.Random, start: int, stop: int, adherence: float, device_type: str
) -> list[int]:
    """Measurement moments between start and stop: active weeks with daily readings, and gap weeks."""
    out: list[int] = []
    active = True
    day = start // DAY
    last_day = stop // DAY
    per_day = {
        "blood_pressure_monitor": 1.35,
        "glucometer": 1.8,
        "weight_scale": 1.0,
        "activity_tracker": 1.0,
    }[device_type]
    p_day = 0.25 + 0.7 * adherence
    while day < last_day:
        if day % 7 == 0:
            active = (rng.random() > 0.12 + 0.1 * (1 - adherence)) if active else (rng.random() < 0.3)
        if active and rng.random() < p_day:
            n = 1 + (rng.random() < per_day - 1)
            for k in range(n):
                # morning (07-09 local ~ 11-13Z) and evening (19-22 local) readings
                hour = rint(rng, 11, 14) if k == 0 else rint(rng, 23, 26)
                at = day * DAY + hour * HOUR + rstep(rng, 0, HOUR, 30)
                if at < stop:
                    out.append(at)
        day += 1
    return out
