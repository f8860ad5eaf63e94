# The two commands of the README are `make run` and `make test`; the other
# targets are for developers and CI.

CARGO ?= cargo
DATA_DIR ?= ./var
SPID_TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
export SPID_TEST_DATABASE_URL

NEXTEST := $(shell command -v cargo-nextest >/dev/null 2>&1 && echo yes)
ifeq ($(NEXTEST),yes)
TEST_RUN = $(CARGO) nextest run --no-fail-fast
TWO_AT_A_TIME = --test-threads 2
else
TEST_RUN = $(CARGO) test --no-fail-fast
TWO_AT_A_TIME = -- --test-threads 2
endif

.PHONY: run build test test-unit test-unit-postgres test-integration test-env lint fmt validate-deploy bench clean

## The whole system in one process on embedded defaults (SQLite under ./var,
## embedded bus and cache, development outbox).
# Bootstrap Italia for the login pages, from npm when npm is there (the
# pages fall back to their own stylesheet without it).
WEB_ASSETS := services/authn-gateway/web/node_modules/bootstrap-italia/dist

run:
	$(CARGO) build -p idp -p idpctl
	@if [ ! -d $(WEB_ASSETS) ] && command -v npm >/dev/null 2>&1; then \
	  npm ci --prefix services/authn-gateway/web --no-audit --no-fund --ignore-scripts --silent \
	    || echo "Bootstrap Italia not installed: the login pages use their own stylesheet"; \
	fi
	IDP__SAML__ASSETS_DIR=$$([ -d $(WEB_ASSETS) ] && echo $(CURDIR)/$(WEB_ASSETS)) \
	  $(CARGO) run -q -p idp -- --log-format text dev --data-dir $(DATA_DIR)

build:
	$(CARGO) build --workspace --bins --tests

## Unit tests (SQLite, then the storage tests again on Postgres) and the
## cross-service integration suite against Postgres, Redis and a Kafka broker.
test: test-env build test-unit test-unit-postgres test-integration

test-env:
	deploy/dev/ensure-test-env.sh

test-unit:
	env -u SPID_TEST_DATABASE_URL $(TEST_RUN) --workspace --exclude integration-tests

test-unit-postgres:
	$(TEST_RUN) -p notification -p audit-log -p identity-manager -p otp-service -p authn-gateway

# Each integration test runs several processes: two at a time on 2 cores.
test-integration:
	SPID_TANSU_BIN=$$(deploy/dev/install-tansu.sh) $(TEST_RUN) -p integration-tests $(TWO_AT_A_TIME)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## The container build and the Helm chart, checked without a cluster.
validate-deploy:
	deploy/validate.sh

clean:
	$(CARGO) clean
	rm -rf $(DATA_DIR)

## Benchmarks: each reports its figures next to a reference measured in the
## same run.
bench:
	$(CARGO) bench -p spid-events --bench pipeline
	$(CARGO) bench -p identity-manager --bench credential_check
	$(CARGO) bench -p otp-service --bench verifications
	$(CARGO) bench -p authn-gateway --bench responses
	$(CARGO) build --release -p idp
	SPID_TANSU_BIN=$$(deploy/dev/install-tansu.sh) $(CARGO) bench -p integration-tests --bench audit_ingest
	SPID_TANSU_BIN=$$(deploy/dev/install-tansu.sh) $(CARGO) bench -p integration-tests --bench notification_delivery
	SPID_TANSU_BIN=$$(deploy/dev/install-tansu.sh) $(CARGO) bench -p integration-tests --bench saml_login
	SPID_TANSU_BIN=$$(deploy/dev/install-tansu.sh) $(CARGO) bench -p integration-tests --bench propagation
