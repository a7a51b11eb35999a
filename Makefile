# Fresh machine: `make demo` or `make test`. Both create .venv in the checkout and install the
# project with the pins in constraints.txt (torch==2.13.0, the local CPU wheel).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS ?= test,ray,minatar,tensorboard

.PHONY: install demo test test-learning gate bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/harness demo

test: $(STAMP)
	$(PY) -m pytest -q

# Each method trains CartPole for its whole 500k-frame budget and must hold a last-50-episode mean
# of 195 (tests/test_learning.py): about 10 minutes on 2 cores, so it is its own target; CI runs both.
test-learning: $(STAMP)
	$(PY) -m pytest -q -m learning tests/test_learning.py

# The learning gate on the project's own algorithms (README "Use it in CI"): the learning smoke
# suite from scratch, then harness gate check against its committed baseline. About 5-7 minutes on
# 2 cores; .ci/run runs it after make test.
GATE_DIR ?= .gate
gate: $(STAMP)
	rm -rf $(GATE_DIR)
	$(VENV)/bin/harness sweep suites/learning-smoke.yaml --results-dir $(GATE_DIR)
	$(VENV)/bin/harness gate check $(GATE_DIR)/learning-smoke --baseline suites/learning-smoke.baseline.json \
		--markdown $(GATE_DIR)/gate.md --junit $(GATE_DIR)/gate.xml

bench: $(STAMP)
	$(VENV)/bin/harness bench

clean:
	rm -rf $(VENV) *.egg-info
