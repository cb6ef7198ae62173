# The two commands a newcomer needs: `make run` and `make test`.
# Everything they need is installed here, system packages included.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SOR_ENV ?= development
HOST ?= 127.0.0.1
PORT ?= 5000
export SOR_ENV

.PHONY: run test install system-packages oidc-provider lint bench clean translations

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages the test suite uses: a real PostgreSQL server, a real IMAP
# server (Dovecot) for the mail intake, Chromium for the browser tests, Node
# for the OpenID Provider of the identity tests, and Prometheus, which scrapes
# /metrics in tests/test_prometheus.py.
system-packages:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql postgresql-contrib"; \
	test -x /usr/sbin/dovecot || missing="$$missing dovecot-imapd"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	test -x /usr/bin/prometheus || missing="$$missing prometheus"; \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages the tests use:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

run: install
	$(BIN)/sorregistry db upgrade
	$(BIN)/sorregistry load-demo --if-empty
	$(BIN)/sorregistry tick
	$(BIN)/sorregistry run --host $(HOST) --port $(PORT)

# The pages' texts (sorregistry/i18n.py): each package's Danish texts are extracted
# (babel.cfg; lazy_gettext and a MenuEntry's label too), merged into its English
# catalogue <package>/translations/en/LC_MESSAGES/messages.po (new texts arrive
# untranslated, to be filled in; gone ones are dropped), and compiled to the
# messages.mo the app reads. Commit both: running the app needs no build step.
I18N_PACKAGES := sorregistry hierarchy applications notifications
translations: install
	@set -e; pot=$$(mktemp); trap 'rm -f "$$pot"' EXIT; \
	for package in $(I18N_PACKAGES); do \
		$(BIN)/pybabel -q extract -F babel.cfg \
			--no-wrap --no-location --sort-output --omit-header -o "$$pot" $$package; \
		$(BIN)/pybabel -q update --init-missing --ignore-obsolete --ignore-pot-creation-date -N \
			--no-wrap -i "$$pot" -d $$package/translations -l en; \
		$(BIN)/pybabel compile --statistics -d $$package/translations -l en; \
	done

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

# The OpenID Provider the identity tests start (npm oidc-provider, OpenID Certified),
# installed from the committed lock file into tests/support/oidc/node_modules: here, in
# the test setup, never while the tests run. (oidc-provider 9 needs Node 20 or later.)
OIDC_DIR := tests/support/oidc
OIDC_STAMP := $(OIDC_DIR)/node_modules/.package-lock.json

$(OIDC_STAMP): $(OIDC_DIR)/package.json $(OIDC_DIR)/package-lock.json
	cd $(OIDC_DIR) && npm ci --no-audit --no-fund --loglevel=error

oidc-provider: $(OIDC_STAMP)

# The suite in parallel (pytest-xdist): one worker per core, at most four, each test file
# on one worker (module fixtures - a PostgreSQL, a Dovecot, a browser - started once per
# file). Much of the suite waits on real servers, so two workers on two cores already halve
# it; TEST_WORKERS=0 runs it in this process, as a debugger wants.
TEST_WORKERS ?= auto
test: install system-packages oidc-provider lint
	$(BIN)/pytest -n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile

bench: install system-packages
	$(BIN)/python bench/bench_import.py

clean:
	rm -rf $(VENV) instance .pytest_cache .hypothesis
