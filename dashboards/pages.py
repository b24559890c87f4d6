"""The dashboard's pages: the one list the navigation and the tests read."""

from pathlib import Path

VIEWS = Path(__file__).resolve().parent / "views"
PAGES = (
    ("overview.py", "Overview", "overview", ":material/dashboard:"),
    ("patient.py", "Patient 360", "patient", ":material/person_search:"),
    ("care_gaps.py", "Care gaps & segments", "care_gaps", ":material/medical_services:"),
    ("outreach.py", "Outreach", "outreach", ":material/campaign:"),
    ("sentiment.py", "Sentiment", "sentiment", ":material/forum:"),
    ("data_quality.py", "Data quality", "data_quality", ":material/rule:"),
    ("identity_review.py", "Identity review", "identity_review", ":material/join:"),
)
"""(script, title, url path, icon) of every page, in menu order; the first is the home page."""
