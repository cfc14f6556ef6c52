# Shared by the scripts of this folder (sourced; each defines its own log()).

# until_ok SECONDS CMD...: retry CMD every 0.2 s until it succeeds or SECONDS pass
until_ok() {
  local seconds=$1; shift
  local tries=$((seconds * 5))
  while ((tries-- > 0)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  log "gave up after ${seconds}s waiting for: $*"
  return 1
}
