#!/bin/bash
# The official mysql image's contract, on MariaDB: on an empty data directory, initialise it with a temporary server
# on a socket only (it logs "ready for connections" once), apply MYSQL_ROOT_PASSWORD / MYSQL_ALLOW_EMPTY_PASSWORD /
# MYSQL_RANDOM_ROOT_PASSWORD, MYSQL_ROOT_HOST, MYSQL_DATABASE, MYSQL_USER + MYSQL_PASSWORD and the scripts of
# /docker-entrypoint-initdb.d, stop it, then start the real server on port 3306 (the second "ready for
# connections", which is what Testcontainers waits for: `wait_strategy_check_string` in testcontainers-python's
# testcontainers/community/mysql/__init__.py (4.15.0) matches the line twice; `_configure` there sets MYSQL_*).
set -euo pipefail

datadir=/var/lib/mysql
if [ "${1:-}" != mariadbd ]; then
  exec "$@"
fi

sql_string() {  # a value as a quoted SQL string literal
  local value=${1//\\/\\\\}
  printf "'%s'" "${value//\'/\\\'}"
}

sql_name() {  # a value as a quoted SQL identifier
  # shellcheck disable=SC2016  # the backquotes are SQL's, not the shell's
  printf '`%s`' "${1//\`/\`\`}"
}

if [ ! -d "$datadir/mysql" ]; then
  if [ -z "${MYSQL_ROOT_PASSWORD:-}" ] && [ -z "${MYSQL_ALLOW_EMPTY_PASSWORD:-}" ] \
    && [ -z "${MYSQL_RANDOM_ROOT_PASSWORD:-}" ]; then
    echo "error: database is uninitialized and password option is not specified" >&2
    echo "  You need to specify one of MYSQL_ROOT_PASSWORD, MYSQL_ALLOW_EMPTY_PASSWORD and MYSQL_RANDOM_ROOT_PASSWORD" >&2
    exit 1
  fi
  if [ -n "${MYSQL_USER:-}" ] && [ "$MYSQL_USER" = root ]; then
    echo "error: MYSQL_USER=root: use MYSQL_ROOT_PASSWORD for the root user" >&2
    exit 1
  fi
  root_password=${MYSQL_ROOT_PASSWORD:-}
  if [ -n "${MYSQL_RANDOM_ROOT_PASSWORD:-}" ] && [ -z "$root_password" ]; then
    root_password=$(tr -dc 'A-Za-z0-9' < /dev/urandom | head -c 32)
    echo "GENERATED ROOT PASSWORD: $root_password"
  fi

  mariadb-install-db --user=mysql --datadir="$datadir" --auth-root-authentication-method=normal \
    --skip-test-db > /dev/null
  socket=/run/mysqld/init.sock
  mariadbd --user=mysql --datadir="$datadir" --skip-networking --socket="$socket" &
  init_pid=$!
  for _ in $(seq 60); do
    mariadb-admin --socket="$socket" --user=root ping > /dev/null 2>&1 && break
    sleep 0.5
  done

  root_host=${MYSQL_ROOT_HOST:-%}
  {
    echo "SET @@SESSION.SQL_LOG_BIN=0;"
    echo "ALTER USER 'root'@'localhost' IDENTIFIED BY $(sql_string "$root_password");"
    if [ "$root_host" != localhost ]; then
      echo "CREATE USER 'root'@$(sql_string "$root_host") IDENTIFIED BY $(sql_string "$root_password");"
      echo "GRANT ALL ON *.* TO 'root'@$(sql_string "$root_host") WITH GRANT OPTION;"
    fi
    if [ -n "${MYSQL_DATABASE:-}" ]; then
      echo "CREATE DATABASE IF NOT EXISTS $(sql_name "$MYSQL_DATABASE");"
    fi
    if [ -n "${MYSQL_USER:-}" ] && [ -n "${MYSQL_PASSWORD:-}" ]; then
      echo "CREATE USER $(sql_string "$MYSQL_USER")@'%' IDENTIFIED BY $(sql_string "$MYSQL_PASSWORD");"
      if [ -n "${MYSQL_DATABASE:-}" ]; then
        echo "GRANT ALL ON $(sql_name "$MYSQL_DATABASE").* TO $(sql_string "$MYSQL_USER")@'%';"
      fi
    fi
    echo "FLUSH PRIVILEGES;"
  } | mariadb --socket="$socket" --user=root

  client=(mariadb --socket="$socket" --user=root "--password=$root_password")
  if [ -n "${MYSQL_DATABASE:-}" ]; then
    client+=("--database=$MYSQL_DATABASE")
  fi
  for script in /docker-entrypoint-initdb.d/*; do
    case "$script" in
      *.sh)
        echo "running $script"
        # shellcheck disable=SC1090  # the user's init scripts, sourced as the official image does
        . "$script"
        ;;
      *.sql) echo "running $script"; "${client[@]}" < "$script" ;;
      *.sql.gz) echo "running $script"; gunzip --stdout "$script" | "${client[@]}" ;;
      *) if [ -e "$script" ]; then echo "ignoring $script"; fi ;;
    esac
  done

  mariadb-admin --socket="$socket" --user=root "--password=$root_password" shutdown
  wait "$init_pid"
fi

exec mariadbd --user=mysql --datadir="$datadir" --bind-address=0.0.0.0 --port=3306
