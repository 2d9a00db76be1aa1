# make demo: run every runbook on the embedded sandbox.  make test: the test suite.
# Both create .venv and install the project on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo demo-alert test lab bench lint docs sandbox-down clean

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

# Test files run in parallel, each worker with a sandbox of its own (files stay whole: module fixtures).
test: $(STAMP)
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

bench: $(STAMP)
	@$(BIN)/python benchmarks/bench.py

lint: $(STAMP)
	@$(BIN)/ruff check .

# docs/findings.md and docs/runbooks.md's runbook table, made from aias_runbooks/catalogue.yaml.
docs: $(STAMP)
	@$(BIN)/python -m aias_runbooks.catalogue --write-docs

sandbox-down: $(STAMP)
	@$(BIN)/aias-runbooks sandbox down

clean:
	rm -rf $(VENV) $(LAB) .sandbox
