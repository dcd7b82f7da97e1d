# The two commands of the quick start: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint typecheck bench bench-webhooks clean reliability reliability-report soak

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# A local trial: besides the embedded defaults, webhooks may go to http://127.0.0.1 so that one can
# point at `sftphook listen`. A real deployment runs `sftphook serve`, which refuses both.
TRIAL_ENV ?= SFTPHOOK_WEBHOOKS__ALLOW_HTTP=true SFTPHOOK_WEBHOOKS__ALLOWED_NETWORKS='["127.0.0.0/8","::1/128"]'

serve: $(STAMP)
	$(TRIAL_ENV) $(BIN)/sftphook serve

test: $(STAMP) tests/js/node_modules
	$(BIN)/pytest -q

# The npm verifier the signature tests run with node (tests/js/package-lock.json pins it).
tests/js/node_modules: tests/js/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix tests/js --no-audit --no-fund && touch $@; \
	else echo "npm is not installed: the Node signature tests will be skipped (CI fails them)"; fi

# The reliability suite alone (also part of `make test`); it writes build/reliability.json.
reliability: $(STAMP)
	$(BIN)/pytest -q tests/reliability

# The suite, then its figures into the table of docs/reliability.md (written even when a case
# failed: the table shows the failure; the exit status is the suite's).
reliability-report: $(STAMP)
	status=0; $(BIN)/pytest -q tests/reliability || status=$$?; \
	$(BIN)/python bench/reliability_report.py; exit $$status

# The same suite at the sizes of the issue (10,000 events, a minute of load, repeated faults);
# prints the table (`python bench/reliability_report.py` puts it in the docs).
soak: $(STAMP)
	status=0; SFTPHOOK_SOAK=1 $(BIN)/pytest -q tests/reliability || status=$$?; \
	$(BIN)/python bench/reliability_report.py --stdout; exit $$status

bench-webhooks: $(STAMP)
	$(BIN)/python bench/webhooks.py $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

# Not a test: compares sftphook with OpenSSH's sshd (docs/performance.md). BENCH_ARGS=--quick etc.
bench: $(STAMP)
	$(BIN)/python bench/sftp.py $(BENCH_ARGS)

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info
