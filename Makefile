# Two entry points for a fresh machine with Python 3.11 and make:
#   make curate   set up, then curate corpus/incoming/ into corpus/ and reports/
#   make test     set up (with test tools and headless Chromium), then lint and run every test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: curate test setup setup-test compile browser lint bench bench-peers clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# setup.py: the compiled loops (curate/_kernels.pyx) and the modules compiled as they are (its
# COMPILED), built by the install (editable: in place).
# compileall: an editable install leaves curate/ without bytecode, and where Python is told not to
# write it (PYTHONDONTWRITEBYTECODE) every run would compile the package again (~0.1 s of start-up).
$(VENV)/.installed: $(BIN)/python pyproject.toml setup.py curate/_kernels.pyx
	$(BIN)/pip install --quiet -e .
	$(BIN)/python -m compileall -q curate
	touch $@

$(VENV)/.installed-test: $(BIN)/python pyproject.toml setup.py curate/_kernels.pyx
	$(BIN)/pip install --quiet -e '.[test,ray]'
	$(BIN)/python -m compileall -q curate
	touch $@ $(VENV)/.installed

setup: $(VENV)/.installed
setup-test: $(VENV)/.installed-test

# A compiled module whose source was edited since it was built runs as Python (curate/_compiled.py)
# until it is built again: this builds, in place, the modules whose source changed.
compile: setup-test
	$(BIN)/python setup.py -q build_ext --inplace

curate: setup
	$(BIN)/curate run

# Debian's chromium and chromedriver for the HTML report's browser test (root or sudo).
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
	  || echo "could not install chromium: the browser test will be skipped"; \
	fi

lint: setup-test
	$(BIN)/ruff check curate tests bench

test: setup-test browser lint
	$(BIN)/curate rules test
	$(BIN)/pytest

# Peer tools measured side by side (never dependencies of curate): datatrove, trafilatura.
bench/.venv-peers/bin/python:
	$(PYTHON) -m venv bench/.venv-peers
	bench/.venv-peers/bin/pip install --quiet datatrove jieba spacy tokenizers "xxhash<4" trafilatura lxml_html_clean

bench-peers: bench/.venv-peers/bin/python

# Every benchmark over ../shared/corpora (each prints "skipped" when the corpora are absent).
bench: setup bench-peers
	@for script in bench/bench_*.py bench/pipeline_timeline.py bench/pool_rounds.py bench/cpu_accounts.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) build corpus/versions corpus/LATEST reports/*/ curate/_kernels.c curate/compiled.sha256
	find curate -name '*.so' -delete
