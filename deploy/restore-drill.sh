#!/usr/bin/env bash
# Restore drill on one machine, as root: a scratch PostgreSQL 15 cluster with WAL archiving,
# a `crm` database with tenants, a base backup, more tenants, a point in time, a "mistake",
# then point-in-time recovery of the base backup into a second cluster: the tenants up to the
# point in time are there, the mistake is not. Needs the `crm` binary (CRM=path/to/crm) and the
# PostgreSQL 15 server binaries; ports 5498 and 5499 free. Prints the times and sizes.
set -euo pipefail
D=${DRILL_DIR:-/tmp/drill}; BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}; CRM=${CRM:-crm}
pg() { runuser -u postgres -- "$@"; }
rm -rf $D/pg $D/wal $D/base $D/restored $D/sock; mkdir -p $D/wal $D/sock; chown postgres $D/wal $D/sock; chmod 777 $D
pg $BIN/initdb -D $D/pg -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
cat >> $D/pg/postgresql.conf <<CONF
wal_level = replica
archive_mode = on
archive_command = 'test ! -f $D/wal/%f && cp %p $D/wal/%f'
archive_timeout = 60
CONF
pg $BIN/pg_ctl -D $D/pg -o "-p 5499 -k $D/sock -c listen_addresses=127.0.0.1" -w start >/dev/null
psql -h 127.0.0.1 -p 5499 -U postgres -qc "CREATE ROLE crm LOGIN CREATEROLE" -c "CREATE DATABASE crm OWNER crm"
export DATABASE_URL=postgres://crm@127.0.0.1:5499/crm CRM_ADMIN_PASSWORD='drill password 1'
export CRM_DATA_DIR=$D/data
$CRM tenant create --slug before-base --name "甲公司" --admin-email a@x.com --admin-name 甲 >/dev/null
# The base backup (the app keeps running meanwhile).
t0=$(date +%s.%N)
pg $BIN/pg_basebackup -h 127.0.0.1 -p 5499 -U postgres -D $D/base -Fp -X stream -c fast
echo "base backup: $(du -sh $D/base | cut -f1) in $(echo "$(date +%s.%N) - $t0" | bc) s"
$CRM tenant create --slug after-base --name "乙公司" --admin-email b@x.com --admin-name 乙 >/dev/null
sleep 1; target=$(psql -h 127.0.0.1 -p 5499 -U postgres -Atc "SELECT now()"); sleep 1
$CRM tenant create --slug the-mistake --name "丙公司" --admin-email c@x.com --admin-name 丙 >/dev/null
psql -h 127.0.0.1 -p 5499 -U postgres -qAtc "SELECT pg_switch_wal()" >/dev/null; sleep 2
echo "archived WAL segments: $(ls $D/wal | wc -l)"
pg $BIN/pg_ctl -D $D/pg -m fast -w stop >/dev/null   # the "lost" server
# Restore: the base backup, replaying archived WAL up to the target time.
t0=$(date +%s.%N)
cp -a $D/base $D/restored
cat >> $D/restored/postgresql.conf <<CONF
archive_mode = off
restore_command = 'cp $D/wal/%f %p'
recovery_target_time = '$target'
recovery_target_action = 'promote'
CONF
touch $D/restored/recovery.signal; chown postgres $D/restored/recovery.signal
pg $BIN/pg_ctl -D $D/restored -o "-p 5498 -k $D/sock -c listen_addresses=127.0.0.1" -w start >/dev/null
until [ "$(psql -h 127.0.0.1 -p 5498 -U postgres -Atc 'SELECT pg_is_in_recovery()')" = f ]; do sleep 0.2; done
echo "recovered to $target in $(echo "$(date +%s.%N) - $t0" | bc) s"
psql -h 127.0.0.1 -p 5498 -U postgres -d crm -Atc "SELECT string_agg(slug, ', ' ORDER BY slug) FROM platform.tenants"
DATABASE_URL=postgres://crm@127.0.0.1:5498/crm $CRM tenant list
pg $BIN/pg_ctl -D $D/restored -m fast -w stop >/dev/null
