#!/usr/bin/env bash
# The main job: the yibiao server with its embedded SQLite database.
#   scripts/run.sh                          listens on 127.0.0.1:8080, data in ./yibiao-data
#   scripts/run.sh --listen 0.0.0.0:8080    any `yibiao-server serve` flag works
#   YIBIAO_DATA_DIR=/var/lib/yibiao scripts/run.sh
# The admin token is written to DATA_DIR/admin-token on the first start.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
exec cargo run --quiet --release --locked -p yibiao-server -- serve "$@"
