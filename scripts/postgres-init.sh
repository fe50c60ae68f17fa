#!/bin/sh
# Run once by the postgres image on its first start (docker-compose.yml mounts it into /docker-entrypoint-initdb.d):
# the role web and workers connect as. It owns nothing; `manage.py database_grant docs_app`, run by the compose
# file's migrate service as the owner after every migration, gives it its rights (only SELECT and INSERT on the
# audit table). The password comes from the environment (.env), never from this file.
set -eu
psql -v ON_ERROR_STOP=1 -v app_password="$DOCS_DB_APP_PASSWORD" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE docs_app LOGIN PASSWORD :'app_password';
SQL
