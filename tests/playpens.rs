//! Several playpens on one machine (SPEC §11): `PORT_PREFIX=auto` leases a block of
//! ports per playpen, recorded in the per-user registry, which `servicectl playpens`
//! lists.
//!
//! Every test here has a registry of its own (XDG_STATE_HOME in a temporary directory)
//! and a range of consecutive PORT_PREFIXes reserved for it
//! (SERVICECTL_PORT_PREFIX_RANGE), so that what is leased is known in advance and no
//! other test's ports are touched.

use crate::common::*;
use std::collections::BTreeSet;
use std::net::TcpListener;

/// A user of the machine: a registry of their own and `blocks` consecutive prefixes.
struct Machine {
    state: tempfile::TempDir,
    blocks: Vec<PortPrefix>,
}

impl Machine {
    fn new(blocks: u32) -> Machine {
        Machine {
            state: tempfile::tempdir().expect("make a state directory"),
            blocks: reserve_range(blocks),
        }
    }

    fn first(&self) -> u16 {
        self.blocks[0].prefix
    }

    fn block(&self, i: usize) -> u16 {
        self.blocks[i].prefix
    }

    fn registry(&self) -> std::path::PathBuf {
        self.state.path().join("servicectl/playpens")
    }

    /// A playpen of this user whose role lists `services` with PORT_PREFIX=auto.
    fn playpen(&self, services: &[&str]) -> Playpen {
        let pp = Playpen::new();
        self.adopt(&pp);
        pp.role_config(&format!(
            "playpen_services=\"{}\"\nPORT_PREFIX=auto\n",
            services.join(" ")
        ));
        pp
    }

    /// Commands of `pp` use this user's registry and range.
    fn adopt(&self, pp: &Playpen) {
        pp.set_env("XDG_STATE_HOME", &self.state.path().display().to_string());
        let last = self.blocks.last().expect("a block").prefix;
        pp.set_env(
            "SERVICECTL_PORT_PREFIX_RANGE",
            &format!("{}-{last}", self.first()),
        );
    }
}

/// The PORT_PREFIX `servicectl env` exports.
#[track_caller]
fn exported_prefix(pp: &Playpen) -> String {
    prefix_in(&pp.run(&["env"]))
}

#[track_caller]
fn prefix_in(out: &Out) -> String {
    out.ok();
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("export PORT_PREFIX="))
        .unwrap_or_else(|| panic!("env exports no PORT_PREFIX:\n{out}"))
        .to_string()
}

/// `servicectl env` in every playpen at once (all started before any is waited for).
fn env_at_once<'a>(pens: impl Iterator<Item = &'a Playpen>) -> Vec<String> {
    let children: Vec<std::process::Child> = pens
        .map(|pp| spawn_piped(pp.command().arg("env")))
        .collect();
    children
        .into_iter()
        .map(|c| {
            let output = c.wait_with_output().expect("wait for servicectl env");
            prefix_in(&Out::from_output(
                output,
                std::time::Duration::ZERO,
                "env".into(),
            ))
        })
        .collect()
}

/// The `servicectl env` lines of a playpen with the echo service, PORT_PREFIX leased.
fn env_text(pp: &Playpen, prefix: u16) -> String {
    format!(
        "export ECHO_HOST=127.0.0.1\nexport ECHO_PORT={port}\nexport LOCAL_RUNVAR={root}/var/run\nexport LOCAL_VAR={root}/var\nexport PLAYPEN_ROLE=dev\nexport PLAYPEN_ROOT={root}\nexport PORT_PREFIX={prefix}\nexport playpen_services=echo\n",
        root = pp.root_str(),
        port = prefix + 7
    )
}

#[test]
fn auto_leases_the_lowest_free_block_and_every_command_shows_and_keeps_it() {
    let machine = Machine::new(3);
    // Something listens in the first block: it is skipped.
    let _listener = TcpListener::bind(("127.0.0.1", machine.first() + 42)).expect("bind");
    let pp = machine.playpen(&["echo"]);
    pp.install(&sample("echo")).ok();
    let prefix = machine.block(1);
    let out = pp.run(&["ports"]);
    out.ok();
    assert_eq!(
        out.stdout,
        format!(
            "SERVICE  VARIABLE   PORT   LISTENING  FROM\necho     ECHO_PORT  {port}  no         PORT_PREFIX (leased) + ECHO_PORT_OFFSET = {prefix} + 7\n",
            port = prefix + 7
        )
    );
    assert_eq!(
        pp.read("var/servicectl/port-prefix"),
        format!("{prefix}\n{}\n{}\n", pp.root_str(), inode_of(&pp.root))
    );
    assert_eq!(pp.run(&["env"]).ok().stdout, env_text(&pp, prefix));
    let config = pp.run(&["print-config", "echo"]);
    config.ok();
    assert!(
        config.stdout.lines().any(|l| l
            == format!(
                "export PORT_PREFIX={prefix}  # {}/var/servicectl/port-prefix",
                pp.root_str()
            )),
        "print-config names the lease as the origin of PORT_PREFIX:\n{config}"
    );
    // Stable across commands and restarts, even once the first block is free again.
    drop(_listener);
    pp.start(&["echo"]);
    tcp_echo(prefix + 7).expect("echo answers on the leased port");
    let status = pp.run(&["status"]);
    status.ok();
    assert_golden(
        &pp,
        "status of a leased playpen",
        &status.stdout.replace(&prefix.to_string(), "PREFIX"),
        &format!(
            "SERVICE STATE PID UPTIME PORTS NOTE\necho running {{PID}} {{TIME}} {}\nPORT_PREFIX PREFIX (leased: PORT_PREFIX=auto, var/servicectl/port-prefix)\n",
            prefix + 7
        ),
    );
    pp.run(&["restart", "echo"]).ok();
    tcp_echo(prefix + 7).expect("echo answers on the same port after a restart");
    assert_eq!(exported_prefix(&pp), prefix.to_string());
    let registry = std::fs::read_to_string(machine.registry()).expect("the registry exists");
    assert_eq!(
        registry,
        format!(
            "{{\"path\":\"{}\",\"prefix\":{prefix},\"leased\":true,\"span\":100}}\n",
            pp.root_str()
        )
    );
}

/// `DEV:INODE` of a directory, as the lease records it.
fn inode_of(path: &std::path::Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).expect("stat");
    format!("{}:{}", meta.dev(), meta.ino())
}

#[test]
fn twenty_playpens_leasing_at_once_get_twenty_blocks_and_one_playpen_gets_one() {
    let machine = Machine::new(21);
    let original = machine.playpen(&["echo"]);
    // Installing evaluates the service's config: the original leases the first block.
    original.install(&sample("echo")).ok();
    assert_eq!(exported_prefix(&original), machine.first().to_string());
    let copies: Vec<Playpen> = (0..20).map(|_| original.copy()).collect();
    let leased = env_at_once(copies.iter());
    let distinct: BTreeSet<u16> = leased
        .iter()
        .map(|p| p.parse().expect("a number"))
        .collect();
    let expected: BTreeSet<u16> = machine.blocks[1..].iter().map(|b| b.prefix).collect();
    assert_eq!(distinct, expected, "20 leases, one per block: {leased:?}");
    // 20 commands of one new copy at once: one lease, the same for all (the block of
    // the copies, gone now, is free again).
    drop(copies);
    let fresh = original.copy();
    let at_once: BTreeSet<String> = env_at_once(std::iter::repeat_n(&fresh, 20))
        .into_iter()
        .collect();
    assert_eq!(
        at_once,
        BTreeSet::from([machine.block(1).to_string()]),
        "one playpen, one lease"
    );
}

#[test]
fn three_copies_of_a_running_playpen_run_side_by_side_on_ports_of_their_own() {
    let machine = Machine::new(4);
    let first = machine.playpen(&["redis"]);
    first.install(&sample("redis")).ok();
    first.start(&["redis"]);
    // Copied while it runs: pidfiles, start records and the lease come along.
    let copies: Vec<Playpen> = (0..3).map(|_| first.copy()).collect();
    let mut ports = vec![machine.first() + 79];
    for pp in &copies {
        let out = pp.run(&["start", "redis"]);
        assert_eq!(out.code, 0, "start in a copy:\n{out}{}", pp.outputs());
        ports.push(exported_prefix(pp).parse::<u16>().expect("a number") + 79);
    }
    let distinct: BTreeSet<u16> = ports.iter().copied().collect();
    assert_eq!(distinct.len(), 4, "four playpens, four ports: {ports:?}");
    for (pp, port) in std::iter::once(&first).chain(&copies).zip(&ports) {
        let out = run_command(std::process::Command::new("redis-cli").args([
            "-p",
            &port.to_string(),
            "ping",
        ]));
        assert_eq!(out.stdout, "PONG\n", "redis of {} on {port}", pp.root_str());
        let status = pp.run(&["status", "--json"]);
        status.ok();
        assert_eq!(status.json()[0]["ports"][0][1], *port, "{status}");
    }
}

#[test]
fn no_free_block_is_an_error_naming_the_range_and_what_to_do() {
    let machine = Machine::new(1);
    let holder = machine.playpen(&["echo"]);
    holder.install(&sample("echo")).ok();
    assert_eq!(exported_prefix(&holder), machine.first().to_string());
    let late = holder.copy();
    let out = late.run(&["env"]);
    out.code_is(1);
    let range = format!("{first}-{first}", first = machine.first());
    assert_eq!(
        out.stderr,
        format!(
            "servicectl: PORT_PREFIX=auto: no free block of 100 ports in {range}: 1 are leased by other playpens and 0 have something listening; so PORT_PREFIX=auto cannot be leased for the playpen {root} — `servicectl playpens` lists the playpens holding leases: remove those you no longer need (their directories), or set PORT_PREFIX to a number in the role config (or widen SERVICECTL_PORT_PREFIX_RANGE)\n",
            root = late.root_str()
        )
    );
    let lease = "var/servicectl/port-prefix";
    assert_eq!(
        late.read(lease),
        holder.read(lease),
        "the copy leased nothing"
    );
    // Once the holder is gone, its block is free for the copy.
    let holder_root = holder.root.clone();
    drop(holder);
    assert!(!holder_root.exists());
    assert_eq!(exported_prefix(&late), machine.first().to_string());
}

#[test]
fn a_registry_that_is_garbage_or_cannot_be_written_stops_the_lease_and_loses_nothing() {
    let machine = Machine::new(2);
    let original = machine.playpen(&["echo"]);
    original.install(&sample("echo")).ok();
    // A copy holds no lease yet: its first command must lease.
    let pp = original.copy();
    let registry = machine.registry();
    std::fs::create_dir_all(registry.parent().unwrap()).unwrap();
    let garbage = "{\"path\":\"/somewhere\",\"prefix\":20000,\"leased\":true}\nthis is not JSON\n";
    std::fs::write(&registry, garbage).unwrap();
    let out = pp.run(&["start", "echo"]);
    out.code_is(1);
    let file = registry.display().to_string();
    out.err_says(&[&format!(
        "the registry of playpens {file} cannot be read: line 2: not a playpen entry (expected ident at line 1 column 2); so PORT_PREFIX=auto cannot be leased for the playpen {root} — nothing was changed; look at it, then set it aside (mv {file} {file}.bad)",
        root = pp.root_str()
    )]);
    assert_eq!(std::fs::read_to_string(&registry).unwrap(), garbage);
    let lease = "var/servicectl/port-prefix";
    assert_eq!(
        pp.read(lease),
        original.read(lease),
        "the copy leased nothing"
    );
    assert!(!pp.exists("var/run/echo.pid"), "nothing started");

    // A state directory that cannot be made (a file stands in its place; root ignores
    // permissions, so a mode would prove nothing in CI).
    std::fs::remove_dir_all(registry.parent().unwrap()).unwrap();
    std::fs::write(registry.parent().unwrap(), "a file\n").unwrap();
    let out = pp.run(&["env"]);
    out.code_is(1);
    out.err_says(&[&format!(
        "cannot create directory {}: File exists (os error 17); so PORT_PREFIX=auto cannot be leased for the playpen {} — make {} writable for this user (or point XDG_STATE_HOME elsewhere); nothing was changed",
        registry.parent().unwrap().display(),
        pp.root_str(),
        registry.parent().unwrap().display(),
    )]);
    assert_eq!(
        std::fs::read_to_string(registry.parent().unwrap()).unwrap(),
        "a file\n"
    );
}

/// Each line's words joined by one space (table padding depends on PID widths).
fn words(text: &str) -> String {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") + "\n")
        .collect()
}

#[test]
fn playpens_lists_every_playpen_of_the_registry_and_drops_those_gone() {
    let machine = Machine::new(3);
    let alpha = machine.playpen(&["echo"]);
    alpha.install(&sample("echo")).ok();
    alpha.role_config("playpen_services=\"echo\"\nPORT_PREFIX=auto\nPLAYPEN_TAG=alpha\n");
    alpha.run(&["supervise", "--daemon"]).ok();
    let beta = Playpen::new();
    machine.adopt(&beta);
    beta.install(&sample("echo")).ok();
    let fixed = machine.block(1);
    // Evaluating the role config leaves a mark: `playpens` must not evaluate it.
    beta.role_config(&format!(
        "playpen_services=\"echo\"\nPORT_PREFIX={fixed}\nPLAYPEN_TAG=beta\ntouch \"$PLAYPEN_ROOT/evaluated\"\n"
    ));
    beta.start(&["echo"]);
    beta.sleeper_service("idle", "");
    let gone = machine.playpen(&["echo"]);
    gone.install(&sample("echo")).ok();
    let registered = std::fs::read_to_string(machine.registry()).expect("the registry");
    assert!(registered.contains(&gone.root_str()), "{registered}");
    drop(gone);
    let supervisor: i32 = alpha
        .read("var/run/servicectl.supervise.lock")
        .trim()
        .parse()
        .expect("the supervisor's PID");
    assert!(
        wait_until(PATIENCE, || alpha.pid("echo").is_some()),
        "the supervisor started echo"
    );
    let a = machine.first();
    std::fs::remove_file(beta.path("evaluated")).expect("start evaluated the role config");
    let mut cmd = bare_command();
    cmd.env("XDG_STATE_HOME", machine.state.path());
    let out = run_command(cmd.arg("playpens"));
    out.ok();
    assert_eq!(
        words(&out.stdout),
        format!(
            "TAG PORT_PREFIX SUPERVISOR RUNNING LISTENING PLAYPEN\nalpha {a} (leased) {supervisor} 1/1 {ap} {}\nbeta {fixed} - 1/2 {bp} {}\n",
            alpha.root_str(),
            beta.root_str(),
            ap = a + 7,
            bp = fixed + 7,
        )
    );
    let out = run_command(cmd.arg("--json"));
    out.ok();
    assert_eq!(
        out.json(),
        serde_json::json!([
            {"path": alpha.root_str(), "tag": "alpha", "port_prefix": a, "leased": true,
             "supervisor_pid": supervisor, "running": 1, "known": 1, "listening": [a + 7]},
            {"path": beta.root_str(), "tag": "beta", "port_prefix": fixed, "leased": false,
             "supervisor_pid": null, "running": 1, "known": 2, "listening": [fixed + 7]},
        ])
    );
    assert!(!beta.exists("evaluated"), "playpens evaluated no config");
    alpha.run(&["shutdown"]).ok();
}

#[test]
fn playpens_with_an_empty_or_garbage_registry() {
    let machine = Machine::new(1);
    let mut cmd = bare_command();
    cmd.env("XDG_STATE_HOME", machine.state.path());
    let out = run_command(cmd.arg("playpens"));
    out.ok();
    assert_eq!(
        out.stdout,
        "no playpens registered (`servicectl init`, `start` and a PORT_PREFIX=auto lease register one)\n"
    );
    std::fs::create_dir_all(machine.registry().parent().unwrap()).unwrap();
    std::fs::write(machine.registry(), "\u{0}\u{1}garbage").unwrap();
    let out = run_command(&mut cmd);
    out.code_is(1);
    let file = machine.registry().display().to_string();
    assert_eq!(
        out.stderr,
        format!(
            "servicectl: the registry of playpens {file} cannot be read: line 1: not a playpen entry (expected value at line 1 column 1) — nothing was changed; look at it, then set it aside (mv {file} {file}.bad): the next command writes a new one, and each playpen is listed again by its next start\n"
        )
    );
    assert_eq!(
        std::fs::read(machine.registry()).unwrap(),
        b"\x00\x01garbage"
    );
}

#[test]
fn a_lease_file_that_is_garbage_stops_only_a_playpen_that_asks_for_a_lease() {
    let machine = Machine::new(1);
    let pp = machine.playpen(&["echo"]);
    pp.install(&sample("echo")).ok();
    pp.write("var/servicectl/port-prefix", "twenty thousand\n");
    let out = pp.run(&["env"]);
    out.code_is(1);
    let file = pp.path("var/servicectl/port-prefix").display().to_string();
    assert_eq!(
        out.stderr,
        format!(
            "servicectl: the PORT_PREFIX lease {file} cannot be read: it does not hold three lines — remove it (rm {file}): the next command leases a prefix again\n"
        )
    );
    assert_eq!(pp.read("var/servicectl/port-prefix"), "twenty thousand\n");
    // With a prefix of its own, the playpen has no use for the file.
    pp.role_config(&format!(
        "playpen_services=\"echo\"\nPORT_PREFIX={}\n",
        machine.first()
    ));
    assert_eq!(exported_prefix(&pp), machine.first().to_string());
}
