#!/usr/bin/env bash
# Installs the headless browser the review-page test drives: Debian's chromium and its
# chromedriver (selenium talks to the browser through it). Both come from the same Debian
# source package, so their versions always agree, and nothing is downloaded at test time.
# Idempotent and quick when both are there. Needs root and apt-get; without them it only warns
# (the browser test then skips, saying why), except under CI=true, where it fails.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    echo "install-browser: $(chromium --version 2>/dev/null | head -n1) and chromedriver present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    message="install-browser: cannot install chromium chromium-driver (needs root and apt-get)"
    if [ "${CI:-}" = "true" ]; then
        echo "$message" >&2
        exit 1
    fi
    echo "$message; the browser test will skip" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
echo "install-browser: installed $(chromium --version 2>/dev/null | head -n1) and chromedriver"
