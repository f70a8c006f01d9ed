//! PostgreSQL for real: the sample package packages/postgresql, installed with
//! `servicectl package install` into a temporary playpen, runs Debian's PostgreSQL
//! server (/usr/lib/postgresql/MAJOR/bin/postgres) with its cluster in var/: initdb on
//! the first start (pre-start hook), the port from PORT_PREFIX + 32, usable as soon as
//! `start` returns, a ping with pg_isready, the same cluster on the next start, a clean
//! stop that leaves no process. And a `migrate` step that creates a table before a
//! dependant starts.
//!
//! PostgreSQL must be installed (scripts/install-deps does it, CI runs it before the
//! tests). When it is missing these tests fail, saying so, as tests/real_servers.rs
//! does for nginx and redis.
//!
//! As root (CI), the server runs as the user `postgres` (PostgreSQL refuses root): the
//! test first shows that a playpen out of that user's reach (mode 0700) is refused with
//! a message saying what to do, then opens it (0755).

use crate::common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const POSTGRESQL_OFFSET: u16 = 32;

/// The bin directory of the newest installed PostgreSQL server; fails (not skips) with
/// a clear message when there is none.
fn require_postgresql() -> PathBuf {
    let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            ["postgres", "initdb", "psql", "pg_isready"]
                .iter()
                .all(|p| bin.join(p).is_file())
                .then_some((major, bin))
        })
        .collect();
    majors.sort();
    majors.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "PostgreSQL is not installed (no /usr/lib/postgresql/MAJOR/bin/postgres with \
             initdb, psql and pg_isready): these tests start Debian's real server; install \
             it with scripts/install-deps (apt-get install postgresql)"
        )
    })
}

/// One psql command against the playpen's server over TCP, as the database superuser
/// `postgres`; unaligned, tuples only, stops at the first error.
fn psql(bin: &Path, port: u16, sql: &str) -> Out {
    let mut cmd = Command::new(bin.join("psql"));
    cmd.args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
        .args(["-p", &port.to_string(), "-U", "postgres", "-d", "postgres"])
        .args(["-c", sql]);
    for var in [
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGPASSWORD",
        "PGSERVICE",
    ] {
        cmd.env_remove(var);
    }
    run_command(&mut cmd)
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The real uid of a live process (the `Uid:` line of /proc/PID/status).
fn uid_of(pid: i32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// How many times the pre-start hook ran initdb (it says so in the output file).
fn initdb_runs(pen: &Playpen) -> usize {
    pen.output("postgresql")
        .matches("initdb: making a new cluster")
        .count()
}

/// Stop everything and check that nothing of the playpen is left: no process (the
/// server's backends and workers run in sessions of their own and rewrite their
/// environment; their working directory, the cluster, still tells), nothing on the port.
#[track_caller]
fn stop_and_check_gone(pen: &Playpen, port: u16) {
    let before = pen.processes();
    pen.run(&["stop"]).ok().out_says(&["postgresql: stopped"]);
    assert!(
        wait_until(PATIENCE, || pen.processes().is_empty()),
        "processes left after stop: {:?} (before the stop: {before:?})",
        pen.processes()
            .iter()
            .map(|&p| (p, cmdline(p)))
            .collect::<Vec<_>>()
    );
    assert!(
        before.iter().all(|&p| !alive(p)),
        "{before:?} outlived the stop"
    );
    assert!(port_closed(port), "something still listens on {port}");
}

/// A playpen with the postgresql package installed on a PORT_PREFIX of its own; the
/// server's port.
fn postgresql_playpen() -> (Playpen, u16) {
    let pen = Playpen::new();
    pen.reserve_ports(&[POSTGRESQL_OFFSET]);
    let port = pen.port(POSTGRESQL_OFFSET);
    pen.install(&sample("postgresql"))
        .ok()
        .out_says(&["installed postgresql-1.0"]);
    pen.role_services(&["postgresql"], "");
    (pen, port)
}

#[test]
fn postgresql_initdb_once_answers_once_started_and_stops_cleanly() {
    let bin = require_postgresql();
    let (pen, port) = postgresql_playpen();

    if is_root() {
        // A playpen of mode 0700 is out of reach for the user `postgres`: refused
        // before initdb, saying what to do; nothing is left running.
        let mode = |m| std::fs::set_permissions(&pen.root, std::fs::Permissions::from_mode(m));
        mode(0o700).expect("chmod the playpen");
        let out = pen.run(&["start"]);
        out.fails().says(&[
            "the server runs as postgres",
            &format!("no search (x) permission on {}", pen.root_str()),
            "POSTGRESQL_USER",
        ]);
        assert!(!pen.exists("var/postgresql/data"));
        assert!(pen.processes().is_empty(), "{:?}", pen.processes());
        mode(0o755).expect("chmod the playpen");
    }

    // First start: initdb, then the server; usable as soon as start returns.
    let out = pen.run(&["start"]);
    assert_eq!(
        out.code,
        0,
        "start postgresql failed:\n{out}\noutput files:{}",
        pen.outputs()
    );
    out.out_says(&["postgresql: started"]);
    psql(&bin, port, "select 1").ok();
    assert_eq!(psql(&bin, port, "select 40 + 2").stdout.trim(), "42");
    assert_eq!(initdb_runs(&pen), 1, "{}", pen.outputs());
    pen.run(&["ping", "postgresql"])
        .ok()
        .out_says(&["postgresql: ok"]);

    // The rendered config and the server's command line: this playpen's cluster and
    // port, 127.0.0.1 only.
    let root = pen.root_str();
    let conf = pen.read("var/etc/postgresql/postgresql.conf");
    for want in [
        format!("\nport = {port}\n"),
        "\nlisten_addresses = '127.0.0.1'\n".to_string(),
        format!("\nunix_socket_directories = '{root}/var/postgresql/run'\n"),
    ] {
        assert!(
            conf.contains(&want),
            "postgresql.conf lacks {want:?}:\n{conf}"
        );
    }
    let pid = pen.running_pid("postgresql");
    let args = cmdline(pid).join(" ");
    assert!(
        args.contains(&format!("/bin/postgres -D {root}/var/postgresql/data ")),
        "the pidfile's process is not the postmaster of this playpen: {args}"
    );
    let listening = psql(&bin, port, "show listen_addresses");
    assert_eq!(listening.stdout.trim(), "127.0.0.1", "{listening}");
    // As root, the server (and everything it started) runs as another user.
    if is_root() {
        let postgres_uid = nix::unistd::User::from_name("postgres")
            .expect("read the user database")
            .expect("the user postgres exists")
            .uid
            .as_raw();
        for p in pen.processes() {
            // (A process that ended since the listing has no uid to show.)
            if let Some(uid) = uid_of(p) {
                assert_eq!(uid, postgres_uid, "{p}: {:?}", cmdline(p));
            }
        }
    }

    // Data written now must survive a stop and a start.
    psql(
        &bin,
        port,
        "create table kept (word text); insert into kept values ('persisted')",
    )
    .ok();
    stop_and_check_gone(&pen, port);

    // Second start: the same cluster, no second initdb.
    pen.run(&["start"]).ok();
    assert_eq!(
        psql(&bin, port, "select word from kept").stdout.trim(),
        "persisted"
    );
    assert_eq!(initdb_runs(&pen), 1, "initdb ran again:{}", pen.outputs());
    // The stop was a clean shutdown: no crash recovery.
    let log = pen.output("postgresql");
    assert!(
        log.contains("database system was shut down at") && !log.contains("not properly shut down"),
        "the cluster was not shut down cleanly:\n{log}"
    );
    pen.run(&["status", "postgresql"]).ok();

    // A one-shot `migrate` step creates the table the dependant `app` needs. `app`
    // checks for it in its pre-start hook, so it cannot start before the migration.
    // migrate reaches the server with PGHOST/PGPORT/PGUSER from the package's profile.
    pen.write_exec(
        "bin/migrate",
        "#!/bin/sh\n\
         # One-shot: create the tables the app needs (safe to run again).\n\
         set -e\n\
         psql -X -v ON_ERROR_STOP=1 -c 'create table if not exists greetings (id serial primary key, text text not null)'\n\
         psql -X -v ON_ERROR_STOP=1 -c \"insert into greetings (text) select 'hello' where not exists (select 1 from greetings)\"\n",
    );
    pen.service(
        "migrate",
        "service_program=migrate\n\
         service_type=oneshot\n\
         service_depends=\"postgresql\"\n",
    );
    pen.sleeper_service(
        "app",
        "service_depends=\"postgresql migrate\"\n\
         service_pre_start=\"psql -X -A -t -v ON_ERROR_STOP=1 -c 'select text from greetings'\"\n",
    );
    pen.role_services(&["postgresql", "migrate", "app"], "");
    // migrate runs to done before app starts: app's pre-start reads its table.
    pen.run(&["start", "app"]).ok().out_says(&["app: started"]);
    assert!(
        pen.output("app").contains("hello"),
        "app's pre-start did not read the migrated table:\n{}",
        pen.output("app")
    );
    assert_eq!(
        psql(&bin, port, "select count(*) from greetings")
            .stdout
            .trim(),
        "1"
    );

    stop_and_check_gone(&pen, port);
    // Stopped on purpose: status says so (exit 3), the cluster stays.
    pen.run(&["status", "postgresql"]).code_is(3);
    assert!(pen.path("var/postgresql/data/PG_VERSION").is_file());
}

/// kill -9 of the server (the OOM killer, a crash): its backends and workers follow it
/// (they watch the postmaster), and the next `start` runs, even where nothing reaps the
/// dead postmaster, whose zombie PID still holds the lock files: crash recovery, and
/// the committed data is there.
#[test]
fn postgresql_starts_again_after_its_server_was_killed() {
    let bin = require_postgresql();
    let (pen, port) = postgresql_playpen();
    pen.start(&[]);
    psql(
        &bin,
        port,
        "create table kept (word text); insert into kept values ('committed')",
    )
    .ok();
    let postmaster = pen.running_pid("postgresql");
    let others: Vec<i32> = pen
        .processes()
        .into_iter()
        .filter(|&p| p != postmaster)
        .collect();
    assert!(!others.is_empty(), "no backend or worker processes seen");
    kill(postmaster, nix::sys::signal::Signal::SIGKILL);
    assert_dies(postmaster, "the killed postmaster");
    for p in others {
        assert_dies(p, "a process of the killed server");
    }
    assert!(port_closed(port));

    pen.run(&["start"]).ok().out_says(&["postgresql: started"]);
    assert_eq!(
        psql(&bin, port, "select word from kept").stdout.trim(),
        "committed"
    );
    let log = pen.output("postgresql");
    assert!(
        log.contains("not properly shut down; automatic recovery"),
        "no crash recovery after kill -9:\n{log}"
    );
    assert_eq!(initdb_runs(&pen), 1, "{log}");
    stop_and_check_gone(&pen, port);
}
