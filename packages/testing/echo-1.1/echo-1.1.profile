# echo-1.1.profile — sourced (under set -a, so every assignment is exported)
# when servicectl evaluates any service's configuration, and by share/load-config
# in a developer's shell.  It tells every program of the playpen where the echo
# service listens; the port is the typed variable ECHO_PORT of the echo service.
# POSIX sh only; must not print anything or fail.
ECHO_HOST=${ECHO_HOST:-127.0.0.1}
