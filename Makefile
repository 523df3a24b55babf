# The two commands of the quick start: `make run` and `make test`.
PYTEST_ARGS ?=

.PHONY: run test bootstrap bench clean-run

bootstrap:
	scripts/bootstrap

# All-in-one deployment on this machine (analyzer + agent, embedded store, demo topology).
run: bootstrap
	scripts/run-allinone

# The whole test suite (what CI runs).
test: bootstrap
	scripts/test $(PYTEST_ARGS)

bench: bootstrap
	scripts/bench
