# Two commands run everything: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test venv lint bench soak migrate worker sandbox clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	export APP_BASE_URL=$${APP_BASE_URL:-http://$${HOST:-127.0.0.1}:$${PORT:-8501}}; \
	$(BIN)/python -m core migrate && $(BIN)/python -m core banner && \
	exec $(BIN)/python -m streamlit run app.py --server.headless=true --browser.gatherUsageStats=false \
		--server.address=$${HOST:-127.0.0.1} --server.port=$${PORT:-8501}

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check core pages sandbox tests bench app.py migrations
	$(BIN)/ruff format --check core pages sandbox tests bench app.py migrations

migrate: $(STAMP)
	$(BIN)/python -m core migrate

worker: $(STAMP)
	$(BIN)/python -m core worker

sandbox: $(STAMP)
	$(BIN)/python -m sandbox --port $${SANDBOX_PORT:-8787}

bench: $(STAMP)
	$(BIN)/python -m bench

soak: $(STAMP)
	SOAK=1 $(BIN)/python -m pytest tests/faults $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
