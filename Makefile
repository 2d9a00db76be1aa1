# make demo: run every runbook on the embedded sandbox.  make test: the test suite.
# Both create .venv and install the project on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
AIRFLOW = .venv-airflow
AIRFLOW_VERSION = 3.3.2
AIRFLOW_CONSTRAINTS = aias_runbooks/integrations/airflow-constraints.txt

.PHONY: demo demo-alert console test lab airflow bench lint docs sandbox-down clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing aias-runbooks into $(VENV) (first run only)..."
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[sandbox,dev]'
	@touch $@

# make demo POOLER=transaction (or session): the database through a real PgBouncer (the pgbouncer package).
demo: $(STAMP)
	@$(BIN)/aias-runbooks demo $(if $(POOLER),--pooler $(POOLER))

# One alert -> run -> page -> resolve: serve with params/routes.yaml, the sandbox's alert source and its PagerDuty.
demo-alert: $(STAMP)
	@$(BIN)/python -m aias_runbooks.serve.demo

# The console (browse, compare, rerun, four-eyes approvals) on the sandbox's reports, at :8087/console/. The first
# time it adds two users, alice (operator) and bob (approver), and prints their tokens once.
console: $(STAMP)
	@$(BIN)/aias-runbooks sandbox up
	@test -f params/console_users.yaml || { $(BIN)/aias-runbooks console add-user alice --role operator && \
		$(BIN)/aias-runbooks console add-user bob --role approver; }
	@$(BIN)/aias-runbooks serve

# Test files run in parallel, each worker with a sandbox of its own (files stay whole: module fixtures).
# tests/integrations/test_airflow.py runs Airflow from .venv-airflow.
test: $(STAMP) $(AIRFLOW)/.installed
	@$(BIN)/python -m pytest -q -n auto --dist loadfile

# JupyterLab in a virtualenv of its own, whose python3 kernel is .venv's (see pyproject.toml for why).
LAB = .venv-lab
$(LAB)/.installed: $(STAMP)
	@test -x $(LAB)/bin/python || $(PYTHON) -m venv $(LAB)
	@echo "Installing JupyterLab into $(LAB) (first run only)..."
	@$(LAB)/bin/python -m pip install -q --disable-pip-version-check 'jupyterlab>=4'
	@$(BIN)/python -m ipykernel install --prefix $(LAB) --name python3 --display-name "Python 3 (aias-runbooks)" >/dev/null
	@touch $@

lab: $(LAB)/.installed
	@$(BIN)/aias-runbooks sandbox up
	@$(LAB)/bin/jupyter lab notebooks/ $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# Apache Airflow in a virtualenv of its own: its constraints (the tested set, pinned here for a repeatable install in
# about a minute) pin SQLAlchemy, pandas and more apart from ours. dags/aias_schedules.py needs only Airflow there and
# reaches the project through .venv's CLI (AIAS_HOME). `make airflow`: Airflow standalone on the sandbox, at :8080.
$(AIRFLOW)/.installed: $(AIRFLOW_CONSTRAINTS)
	@test -x $(AIRFLOW)/bin/python || $(PYTHON) -m venv $(AIRFLOW)
	@echo "Installing Apache Airflow $(AIRFLOW_VERSION) into $(AIRFLOW) (first run only)..."
	@$(AIRFLOW)/bin/python -m pip install -q --disable-pip-version-check 'apache-airflow==$(AIRFLOW_VERSION)' \
		-c $(AIRFLOW_CONSTRAINTS)
	@touch $@

airflow: $(STAMP) $(AIRFLOW)/.installed
	@$(BIN)/aias-runbooks sandbox up
	@PATH=$(CURDIR)/$(AIRFLOW)/bin:$$PATH AIAS_HOME=$(CURDIR) AIRFLOW_HOME=$(CURDIR)/.airflow \
		AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags AIRFLOW__CORE__LOAD_EXAMPLES=false airflow standalone

bench: $(STAMP) $(AIRFLOW)/.installed
	@$(BIN)/python benchmarks/bench.py
	@AIAS_SANDBOX_DIR=$(CURDIR)/.bench/large AIAS_SANDBOX_PORT_BASE=55330 $(BIN)/python benchmarks/db_depth.py

lint: $(STAMP)
	@$(BIN)/ruff check .

# docs/findings.md and docs/runbooks.md's runbook table, made from aias_runbooks/catalogue.yaml.
docs: $(STAMP)
	@$(BIN)/python -m aias_runbooks.catalogue --write-docs

sandbox-down: $(STAMP)
	@$(BIN)/aias-runbooks sandbox down

clean:
	rm -rf $(VENV) $(LAB) $(AIRFLOW) .airflow .sandbox
