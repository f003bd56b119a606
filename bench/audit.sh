#!/usr/bin/env bash
# Dependency audit: pip-audit over every package installed in .venv (the CI's long form).
#
# pip-audit runs from its own throwaway virtualenv so that it does not audit (or change) itself into the project's
# environment. It needs network access to its advisory database: PyPI's per-version JSON API (default) or OSV
# (AUDIT_SERVICE=osv). Exit status: 0 clean, 1 vulnerabilities found, other on errors. A package that the service
# does not know (a local build, a private mirror) is listed as skipped: read the "Skip Reason" table.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${AUDIT_VENV:-${TMPDIR:-/tmp}/liveperson-etl-audit-venv}
SERVICE=${AUDIT_SERVICE:-pypi}
SITE=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
[ -x "$VENV/bin/pip-audit" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q pip-audit; }
exec "$VENV/bin/pip-audit" --path "$SITE" --vulnerability-service "$SERVICE" --progress-spinner off --desc on "$@"
