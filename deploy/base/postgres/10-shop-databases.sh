#!/bin/sh
# Runs once, when the official postgres image initialises an empty data directory
# (/docker-entrypoint-initdb.d). Creates one role and one database per service that owns data;
# SHOP_DATABASES lists them and /run/secrets/shop-db/<name> holds each role's password.
# psql variables (:"name", :'password') quote the values, so nothing is spliced into SQL by hand.
set -eu
for name in $SHOP_DATABASES; do
  password_file="/run/secrets/shop-db/$name"
  if [ ! -s "$password_file" ]; then
    echo "shop-databases: no password for database $name at $password_file" >&2
    exit 1
  fi
  password="$(cat "$password_file")"
  psql --set ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
       --set name="$name" --set password="$password" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
  echo "shop-databases: created database and role $name"
done
