#!/bin/sh
# Runs once, when the official postgres image initialises an empty data directory
# (/docker-entrypoint-initdb.d). Creates one role and one database per service that owns data;
# SHOP_DATABASES lists them; <SHOP_DB_PASSWORD_DIR>/<name> holds each role's password (the Secret shop-db
# mounted at /run/secrets/shop-db).
# psql variables (:"name", :'password') quote the values, so nothing is spliced into SQL by hand; the
# password reaches psql through its environment (\getenv), never its command line.
set -eu
password_dir="${SHOP_DB_PASSWORD_DIR:-/run/secrets/shop-db}"
for name in $SHOP_DATABASES; do
  password_file="$password_dir/$name"
  if [ ! -s "$password_file" ]; then
    echo "shop-databases: no password for database $name at $password_file" >&2
    exit 1
  fi
  SHOP_DB_PASSWORD="$(cat "$password_file")" \
    psql --no-psqlrc --set ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
         --set name="$name" <<'SQL'
\getenv password SHOP_DB_PASSWORD
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
  echo "shop-databases: created database and role $name"
done
