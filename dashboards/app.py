"""patient-insights dashboard: `streamlit run dashboards/app.py` (or `make dashboard`).

Read-only over the lake and the exports of `PATIENT_INSIGHTS_LAKE` / `PATIENT_INSIGHTS_EXPORTS`, but for a
care manager's identity decision (the Identity review page, through `ui.decide`).
Each page is a script under `dashboards/views/`, listed once in `dashboards/pages.py`.
"""

import streamlit as st

from dashboards.pages import PAGES, VIEWS

st.set_page_config(page_title="patient-insights", page_icon=":material/medical_services:", layout="wide")
navigation = st.navigation(
    [
        st.Page(VIEWS / script, title=title, url_path=path, icon=icon, default=index == 0)
        for index, (script, title, path, icon) in enumerate(PAGES)
    ]
)
st.set_page_config(page_title=f"{navigation.title} · patient-insights")
navigation.run()
