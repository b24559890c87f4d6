# patient-insights: the two commands a new user needs are `make run` and `make test`.
# Everything is installed into .venv from requirements.lock (names, versions, hashes) with the
# machine's own Python; uv is bootstrapped with pip (`python -m uv`) when it is missing.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV := $(PYTHON) -m uv
STAMP := $(VENV)/.installed

export PATIENT_INSIGHTS_LANDING ?= ./landing
export PATIENT_INSIGHTS_LAKE ?= ./lake
export PATIENT_INSIGHTS_EXPORTS ?= ./exports
# the demo history ends on this day; analytics windows (adherence, care gaps) are as of it
export PATIENT_INSIGHTS_AS_OF ?= 2026-06-30
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export GX_ANALYTICS_ENABLED ?= false
DEMO_PATIENTS ?= 1000
DEMO_SEED ?= 42
DEMO_DEFECTS ?= 0
# the demo's campaign day: the as-of day less the campaigns' 90-day follow-up and a day
DEMO_CAMPAIGN_DAY ?= $(shell $(PYTHON) -c "import datetime as d; print(d.date.fromisoformat('$(PATIENT_INSIGHTS_AS_OF)') - d.timedelta(days=91))")

.PHONY: setup run test lint dev dashboard bench chaos lock clean

$(STAMP): requirements.lock pyproject.toml
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --user uv \
		|| $(PYTHON) -m pip install --quiet uv
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	$(UV) pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

# Byte-code is written ahead: where PYTHONDONTWRITEBYTECODE is set (CI images, containers), every process
# would otherwise compile every imported module from source again (seconds per command). Cheap when current.
setup: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	@$(BIN)/python -m compileall -q -j 0 pipelines assets models dashboards bench tests >/dev/null

$(DAGSTER_HOME)/dagster.yaml:
	@mkdir -p "$(DAGSTER_HOME)"
	@printf 'telemetry:\n  enabled: false\n# pipeline runs (a sensor'"'"'s and one started by hand) wait for each other\nrun_queue:\n  tag_concurrency_limits:\n    - key: patient-insights/pipeline\n      limit: 1\n# events stored without a new connection and a disk sync each (pipelines/dagster_storage.py)\nevent_log_storage:\n  module: pipelines.dagster_storage\n  class: PooledSqliteEventLogStorage\n  config:\n    base_dir: %s/history/runs\n' "$(abspath $(DAGSTER_HOME))" > "$@"

# the generator's labelled conversation turns stand in for an organization's hand-labelled sample
DEMO_LABELS = PATIENT_INSIGHTS_SENTIMENT_LABELS="$(dir $(abspath $(PATIENT_INSIGHTS_LANDING)))ground_truth/conversation_turns.csv"

# The demo closes the outreach loop: the campaigns run 91 days before the as-of day (with their randomized
# hold-outs), the outreach simulator answers them and closes gaps with a known effect, and the pipeline runs
# again as of the demo day, measuring the effect (gold/campaign_effect, the dashboard's Outreach page).
run: setup
	@# the demo starts afresh (its campaign day comes before the last run's): only folders inside the checkout
	@for d in "$(PATIENT_INSIGHTS_LANDING)" "$(PATIENT_INSIGHTS_LAKE)" "$(PATIENT_INSIGHTS_EXPORTS)" ground_truth; do \
		case "$$(realpath -m "$$d")/" in "$(CURDIR)"/?*) rm -rf "$$d" ;; \
		*) echo "make run: $$d is outside $(CURDIR); clear it yourself or point it at a demo folder" >&2; exit 1 ;; esac; \
	done
	$(BIN)/patient-insights generate --patients $(DEMO_PATIENTS) --seed $(DEMO_SEED) --defects $(DEMO_DEFECTS) \
		--as-of $(PATIENT_INSIGHTS_AS_OF) --out "$(PATIENT_INSIGHTS_LANDING)"
	$(DEMO_LABELS) PATIENT_INSIGHTS_AS_OF=$(DEMO_CAMPAIGN_DAY) \
		$(BIN)/patient-insights ingest --landing "$(PATIENT_INSIGHTS_LANDING)" --lake "$(PATIENT_INSIGHTS_LAKE)"
	$(BIN)/patient-insights simulate-outreach --landing "$(PATIENT_INSIGHTS_LANDING)" \
		--lake "$(PATIENT_INSIGHTS_LAKE)" --exports "$(PATIENT_INSIGHTS_EXPORTS)" --seed $(DEMO_SEED) --defects 0.01
	$(DEMO_LABELS) $(BIN)/patient-insights ingest --landing "$(PATIENT_INSIGHTS_LANDING)" --lake "$(PATIENT_INSIGHTS_LAKE)"

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n auto --dist loadfile

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

dev: setup
	$(BIN)/dagster dev -w workspace.yaml

# local mode: the role comes from configuration (the demo data is synthetic, so a care manager's view)
dashboard: setup
	PATIENT_INSIGHTS_DASHBOARD_ROLE=$${PATIENT_INSIGHTS_DASHBOARD_ROLE:-care_manager} \
		$(BIN)/streamlit run dashboards/app.py --browser.gatherUsageStats false

bench: setup
	$(BIN)/python -m bench.run

chaos: setup  # the pipeline killed at random points (CHAOS_TRIALS, default 20) → bench/reports/chaos.md
	$(BIN)/python -m bench.chaos

lock: setup
	$(UV) pip compile pyproject.toml --python $(PYTHON) --generate-hashes --no-header --quiet -o requirements.lock

clean:
	rm -rf $(VENV) lake exports landing ground_truth .dagster_home .pytest_cache
