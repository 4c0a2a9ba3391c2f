# Two entry points for a newcomer (see README): `make demo` and `make test`.
# Each does its own idempotent set-up first, so either works on a fresh clone.

VENV        ?= .venv
PY          := $(VENV)/bin/python
HBTOOL      := $(VENV)/bin/hbtool
DEMO        ?= captures/hb-bcast-crc
# Debian packages: the real peers the tests talk to, the capture tools, and what
# netfilterqueue needs to compile.
APT_PACKAGES := heartbeat corosync tshark tcpdump arping iproute2 iptables nftables \
                libnetfilter-queue-dev build-essential python3-dev python3-venv wireshark-common \
                lua5.3 lua5.4 pacemaker pacemaker-cli-utils resource-agents fence-agents \
                nginx vsftpd exim4-daemon-light dovecot-imapd dovecot-pop3d slapd ldap-utils \
                mariadb-server leafnode socat
# Server packages (nginx, mariadb, slapd...) start their system instance when installed; the
# tests start their own, so installation runs under a policy-rc.d that refuses every start
# (101), and the one that was there before (if any) comes back afterwards.
POLICY_RC := /usr/sbin/policy-rc.d

.PHONY: demo test setup system venv lint bench clean

demo: setup
	@# git keeps no mode 600: without this the demo opens with Heartbeat's (right)
	@# complaint that the bundled authkeys file is readable by others.
	chmod go-rwx $(DEMO)/authkeys
	$(HBTOOL) decode $(DEMO)/capture.pcap --authkeys $(DEMO)/authkeys
	$(HBTOOL) decode $(DEMO)/capture.pcap --authkeys $(DEMO)/authkeys --stats

# The root-only part (namespaces, real daemons, the chaos matrix) runs alone: its verdicts
# depend on timing. The rest is CPU-bound and independent, so it uses both cores. Both parts
# always run; make fails if either did. Chaos results (table, results.json, timelines) are kept
# in chaos-results/ (HBTOOLS_CHAOS_OUT overrides).
HBTOOLS_CHAOS_OUT ?= $(CURDIR)/chaos-results
export HBTOOLS_CHAOS_OUT

test: setup
	$(PY) -m ruff check .
	@rc=0; \
	$(PY) -m pytest -ra --durations=20 -m "netns or chaos" || rc=$$?; \
	$(PY) -m pytest -ra --durations=20 -n 2 -m "not netns and not chaos" || rc=$$?; \
	exit $$rc

setup: system venv

# Installs the Debian packages that are missing; as a normal user it only says which.
system:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "system packages: all present"; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "installing: $$missing"; \
		saved=; if [ -e $(POLICY_RC) ]; then saved=$(POLICY_RC).hbtools-saved; cp -p $(POLICY_RC) $$saved; fi; \
		printf '#!/bin/sh\nexit 101\n' > $(POLICY_RC); chmod 755 $(POLICY_RC); \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; rc=$$?; \
		if [ -n "$$saved" ]; then mv $$saved $(POLICY_RC); else rm -f $(POLICY_RC); fi; \
		exit $$rc; \
	else \
		echo "not root: install these Debian packages by hand (sudo apt-get install $$missing);"; \
		echo "tests that need them will be skipped"; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $@

lint: venv
	$(PY) -m ruff check .

bench: setup
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
