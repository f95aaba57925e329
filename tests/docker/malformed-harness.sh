#!/bin/sh
# Stands in for `llem-harness run /llem/run`: prints a progress line, writes a broken result.
echo '{"event": "phase", "phase": "config"}'
printf '{"schema_version": "1.0", "truncated' > "$2/result.json"
exit 0
