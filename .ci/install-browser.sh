#!/usr/bin/env bash
# Installs the headless browser the review-page test drives: Debian's chromium and its
# matching chromedriver (selenium talks to the browser through it; the pair comes from the same
# Debian source package, so their versions always agree and nothing is downloaded at run time).
# Idempotent: when both are installed it only says so. Needs root and apt (Debian/Ubuntu).
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    echo "install-browser: $(chromium --version 2>/dev/null | head -n1) and chromedriver already installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-browser: error: needs root to apt-get install chromium chromium-driver" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
echo "install-browser: installed $(chromium --version 2>/dev/null | head -n1)"
