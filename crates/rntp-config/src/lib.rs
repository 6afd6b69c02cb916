//! Pure ntp.conf parser for rntpd: text in, typed [`Config`] out, with
//! `file:line:col` diagnostics an administrator can act on.
//!
//! Parsing runs in two phases. Phase 1 turns text into a syntactic mirror
//! (directive words and arguments with their positions) and splices in
//! `includefile`s; phase 2 interprets the directives, applies defaults and
//! runs cross-field checks. Problems never stop parsing early: every error
//! and warning in every file is reported in one run.
//!
//! This crate does **not** resolve host names, open sockets or start
//! anything. The only function that touches the file system is
//! [`load_file`]; [`parse_str`] is pure and reads includes through a
//! callback. Hostile or broken files are bounded: see [Limits](#limits).
//!
//! ```
//! use std::path::Path;
//!
//! let text = "pool pool.example.org iburst\npidfile /run/ntpd.pid\n";
//! let no_includes = &mut |_: &Path| Err(std::io::ErrorKind::NotFound.into());
//! let loaded = rntp_config::parse_str(Path::new("/etc/ntp.conf"), text, no_includes)?;
//! assert_eq!(loaded.config.sources[0].host.to_string(), "pool.example.org");
//! assert_eq!(
//!     loaded.warnings[0].to_string(),
//!     "/etc/ntp.conf:2:1: warning: `pidfile` is not supported by rntpd yet; line ignored"
//! );
//!
//! let err = rntp_config::parse_str(Path::new("/etc/ntp.conf"), "server a.example minpoll abc", no_includes)
//!     .unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "/etc/ntp.conf:1:26: error: minpoll expects an integer from -2 to 17, found \"abc\"\n\
//!      1 | server a.example minpoll abc\n  \
//!        |                          ^^^"
//! );
//! # Ok::<(), rntp_config::ConfigErrors>(())
//! ```
//!
//! # Directive reference (for administrators)
//!
//! The file format is ntpd's: one directive per line, words separated by
//! whitespace, `#` starts a comment that runs to the end of the line, and a
//! word may be quoted with `"` to contain spaces or `#`. A line cannot be
//! continued onto the next one.
//!
//! ## Supported directives
//!
//! * `server HOST [OPTIONS]` — one time server.
//! * `pool HOST [OPTIONS]` — a DNS name that resolves to several servers.
//! * `peer HOST [OPTIONS]` — accepted as `server`, with a warning:
//!   symmetric active mode is not supported, so the host is polled as a
//!   server (NTPsec does the same). Its options are those of `server`.
//!
//!   `HOST` is an IPv4 address (`192.0.2.1`), an IPv6 address, bare
//!   (`2001:db8::1`) or in brackets (`[2001:db8::1]`), or a DNS host name
//!   (letters, digits and `-` in dot-separated labels of at most 63
//!   characters, 253 in total; a trailing dot is allowed and case does not
//!   matter). Names are resolved by the daemon, not when the file is read.
//!   IPv6 zone indices (`fe80::1%eth0`) are rejected. Every line is kept,
//!   in file order, even if it repeats an earlier one.
//!
//!   `OPTIONS`, in any order:
//!
//!   | option | meaning | default |
//!   |---|---|---|
//!   | `iburst` | send a quick burst of packets while the server is unreachable | off |
//!   | `burst` | send a burst at every poll | off |
//!   | `prefer` | prefer this source when otherwise equal | off |
//!   | `noselect` | poll, but never use for time | off |
//!   | `minpoll N` | shortest poll interval, 2^N seconds, N from -2 to 17 | 6 (64 s) |
//!   | `maxpoll N` | longest poll interval, 2^N seconds, N from -2 to 17 | 10 (1024 s) |
//!   | `version N` | NTP version to send, 1 to 4 | 4 |
//!   | `port N` | server UDP port, 1 to 65535 (**rntpd extension**, as in chrony) | 123 |
//!   | `maxsources N` | `pool` only: use at most N servers, 1 to 64 (**rntpd extension**) | 4 |
//!   | `key N` | sign every request with symmetric key N and use only replies signed with it (see [Authentication](#authentication)); N from 1 to 4294967295 | none |
//!
//!   Negative poll exponents are an **rntpd extension** (as in chrony) for
//!   LANs and tests. `minpoll` greater than `maxpoll` is an error.
//!
//!   ntpd/NTPsec options that rntpd does not support yet are accepted with a
//!   warning and ignored; the source is still used: `true`, `xleave`,
//!   `preempt`, and (each followed by one value) `mode`, `ttl` (except on
//!   `manycastclient` lines), `bias`, and the reference-clock options
//!   `subtype`, `baud`, `holdover`, `time1`, `time2`, `stratum`, `refid`,
//!   `path`, `ppspath`, `flag1`..`flag4`.
//!
//!   **Options that ask for Autokey or NTS are errors**, because rntpd
//!   authenticates with symmetric keys only and polling such a source
//!   without the authentication asked for would silently downgrade it:
//!   `autokey` and `ident GROUP` (ntpd's Autokey), and NTPsec's NTS options
//!   `nts`, `noval`, `ask ADDR`, `require ADDR`, `ca PATH`, `cert FILE`,
//!   `aead ALGORITHM`, `expire N`. The message names the option as written
//!   ("remove `nts` ... or use another daemon"). The Autokey and NTS
//!   directives `keysdir`, `crypto`, `revoke`, `automax`, `nts` (serving
//!   NTS, which clients notice by failing, not by being downgraded) and
//!   `ntpsigndsocket` are accepted with a warning.
//!
//!   An address-family qualifier before the host (`-4`/`--ipv4` or
//!   `-6`/`--ipv6`, as in ntpd: `pool -4 pool.ntp.org`) restricts a name to
//!   IPv4 or IPv6 addresses. The family is kept on each source: `server -4
//!   X` and `server -6 X` are two sources.
//!
//!   `server 127.127.T.U` (ntpd's reference-clock pseudo-address, e.g. the
//!   old `server 127.127.1.0` local clock) produces a warning and the line is
//!   ignored: rntpd has no reference clocks.
//!
//! * `tos KEYWORD N [KEYWORD N ...]` — clock-selection tuning; several `tos`
//!   lines combine.
//!
//!   | keyword | meaning | range | default |
//!   |---|---|---|---|
//!   | `minclock` | fewest survivors the cluster algorithm keeps | 1-255 | 3 |
//!   | `maxclock` | most associations; as in ntpd, each `pool` line counts one | 1-255 | 10 |
//!   | `minsane` | fewest truechimers needed to set the clock | 1-255 | 1 |
//!   | `orphan` | orphan-mode stratum | 1-15 | off |
//!
//!   `minclock` and `minsane` may not exceed `maxclock`. The ntpd/NTPsec
//!   keywords `ceiling`, `cohort`, `floor`, `mindist`, `maxdist`, `maxdisp`,
//!   `orphanwait`, `beacon`, `basedate` and `bcpollbstep` are accepted with a
//!   warning ("not supported yet") and their value is ignored.
//!
//! * `driftfile PATH` — where the frequency estimate is kept. Given twice,
//!   the last one wins (with a warning).
//!
//! * `tinker KEYWORD SECONDS [KEYWORD SECONDS ...]` — clock-discipline
//!   thresholds, in seconds; decimals are allowed (`0.128`), with at most 6
//!   digits after the point. Keywords may come in any order and several
//!   `tinker` lines combine (a later value wins).
//!
//!   | keyword | meaning | range | default |
//!   |---|---|---|---|
//!   | `step` | offsets larger than this are corrected by stepping the clock instead of slewing it; `0` means never step (always slew) | 0-1000000 | 0.128 |
//!   | `panic` | offsets larger than this make rntpd give up instead of setting the clock; `0` means no limit (e.g. for virtual machines whose clock may be far off after a pause) | 0-1000000 | 1000 |
//!   | `stepout` | how long a large offset must persist before it is stepped | 1-3600 | 300 |
//!
//!   The upper bound of 1000000 s (about 11.6 days) catches typos; to lift
//!   a limit entirely, use `0`. The ntpd keywords `allan`, `dispersion`,
//!   `freq`, `huffpuff`, `tick`, `stepback` and `stepfwd` are accepted with
//!   a warning ("not supported yet") and their value is ignored; the rest of
//!   the line still applies.
//!
//! * `makestep THRESHOLD LIMIT` — **rntpd extension**, borrowed from chrony
//!   (ntpd has no such directive): step the clock whenever the offset
//!   exceeds `THRESHOLD` seconds (0-1000000, decimals allowed as for
//!   `tinker`), but only during the first `LIMIT` clock updates after rntpd
//!   starts; `LIMIT` `-1` means always. `makestep 1 3` is the usual choice
//!   for a machine whose clock may be far off at boot. Exactly two
//!   arguments. Given twice, the last one wins (with a warning). Without a
//!   `makestep` line only the `tinker` thresholds apply.
//!
//! * `maxslewrate PPM` — **rntpd extension**, chrony's directive: the fastest
//!   rate at which an offset is corrected, in ppm (1-83333; default 83333,
//!   chrony's default and Linux maximum). rntpd corrects offsets by running
//!   the clock slightly faster or slower (through the kernel's tick length
//!   beyond 500 ppm), so 50 ms takes 0.6 s at the default and 100 s at 500.
//!   One integer. Given twice, the last one wins (with a warning). ntpd's
//!   `tinker` has no slew rate; its `step`, `panic` and `stepout` are above.
//!
//! * `leapfile PATH` — the leap second table, IANA's `leap-seconds.list`
//!   (tzdata ships it as `/usr/share/zoneinfo/leap-seconds.list`). Leap
//!   seconds it lists are announced to clients during the month they end
//!   and armed in the kernel on their day; the sources' leap warnings are
//!   then believed only where the table agrees. rntpd warns at start when
//!   the file has expired (update tzdata) and ignores an expired table.
//!   Given twice, the last one wins (with a warning).
//!
//! * `leapsmear SECONDS` — **rntpd extension** (ntpd's `leapsmearinterval`
//!   is read as the same): instead of announcing a leap second to clients,
//!   serve time that runs 1 s slower (faster for a deleted second) over the
//!   `SECONDS` (60-172800; 86400 is usual) before it, so clients that
//!   cannot handle leap seconds see none. It applies to every address rntpd
//!   serves (smeared and unsmeared time are never mixed); only use it when
//!   every client of this server wants smeared time. The system clock itself
//!   still takes the leap second from the kernel.
//!
//! * `includefile PATH` — reads another file at this point. A relative
//!   `PATH` is relative to the directory of the file that includes it.
//!   Includes nest at most 10 deep; a file that (directly or indirectly)
//!   includes itself, and an include that cannot be read, are errors.
//!   Only regular files are read: a directory (an NTPsec feature, not
//!   supported yet), a FIFO, a socket or a device such as `/dev/zero` is an
//!   error at once, at the `includefile` line.
//!
//! * `resolver ADDR[:PORT] ...` — **rntpd extension**: DNS servers to use
//!   for `server`/`pool` names instead of the system's resolver
//!   configuration. At least one address; IPv6 as `[::1]:53`, `[::1]` or bare
//!   `::1`; the port defaults to 53. Several lines accumulate.
//!
//! * `resolve [floor SECONDS] [ceiling SECONDS]` — **rntpd extension**: names
//!   are re-resolved when their DNS TTL expires, but never more often than
//!   `floor` (default 3600) nor less often than `ceiling` (default 86400).
//!   1-604800; the floor may not exceed the ceiling.
//!
//! * `sourcedir DIR` — **rntpd extension**, as chrony's: read more
//!   `server`, `pool` and `peer` lines from the files named `*.sources` in
//!   `DIR` (in name order; hidden files are skipped), at start and on every
//!   reload (`systemctl reload rntpd`, `rntpctl reload`). Meant for DHCP and
//!   NetworkManager hooks: they write a file and ask for a reload, and the
//!   sources stay across restarts for as long as the file does. A `*.sources`
//!   file may hold nothing but source lines and comments; anything else is an
//!   error at its `FILE:LINE:COL`. A `DIR` that does not exist counts as
//!   empty; a relative `DIR` is relative to the directory of the file that
//!   names it. Several lines accumulate. At most 256 files, regular files
//!   only, within the 1 MiB of the configuration.
//!
//! * `logfile PATH` — log to `PATH` (appending) instead of standard error,
//!   with a timestamp on each line. The file is reopened on every reload, so
//!   logrotate's `postrotate` can send `SIGHUP`. Given twice, the last one
//!   wins (with a warning).
//!
//! * `logconfig ...` — accepted with a warning and ignored: ntpd selects log
//!   messages by class, rntpd by severity; use `rntpd --log-level LEVEL`.
//!
//! ## Serving time
//!
//! **rntpd serves time only on the addresses named by `interface listen`
//! lines.** Without one, rntpd is a client only and opens no server socket,
//! whatever else the file says. This is unlike ntpd, which serves on every
//! interface by default. It is deliberate: installing rntpd must never open
//! a time server that the administrator did not ask for.
//!
//! * `interface listen ADDRESS [port N]` — serve time on `ADDRESS`, an IPv4
//!   address (`192.0.2.1`) or an IPv6 address, bare (`2001:db8::1`) or in
//!   brackets (`[2001:db8::1]`). `interface listen all` and `interface
//!   listen wildcard` serve on every address (`0.0.0.0` and `::`),
//!   `interface listen ipv4` on every IPv4 address (`0.0.0.0`), `interface
//!   listen ipv6` on every IPv6 address (`::`). `port N` (1 to 65535,
//!   default 123) is an **rntpd extension** for tests and unprivileged
//!   setups; ntpd always serves on port 123. Several lines accumulate; an
//!   address and port given twice is used once (with a warning).
//!
//!   ntpd's other forms are accepted with a warning ("not supported by
//!   rntpd yet; line ignored") and do nothing: `interface ignore ...` and
//!   `interface drop ...` (rntpd does not listen where it is not told to
//!   anyway), interface names (`interface listen eth0`) and address prefixes
//!   (`interface listen 192.168.0.0/16`). The synonym `nic` is not supported
//!   yet at all (warning, line ignored): write `interface listen`.
//!
//! * `restrict [-4|-6] default|ADDRESS [mask MASK] [-4|-6] [FLAG ...]` —
//!   which clients the server answers, and how. `ADDRESS` is an IPv4 or IPv6
//!   address (brackets allowed). Without `mask` the line is about that one
//!   host; `mask` is a netmask of the same family, such as `255.255.255.0`
//!   or `ffff:ffff:ffff:ffff::`, and must be contiguous (one bits, then only
//!   zero bits). Address bits outside the mask are ignored, as in ntpd.
//!   `restrict default` applies to every client that no more specific line
//!   matches, of both families; `restrict -4 default` and `restrict -6
//!   default` only to IPv4 or IPv6 clients. With an address, `-4`/`-6` must
//!   agree with its family. Every line is kept in file order; the most
//!   specific matching line applies to a client. A line without flags lifts
//!   all restrictions for its clients. Without any `restrict default` line,
//!   rntpd treats other clients as `restrict default kod limited noquery`
//!   (what NTPsec and Debian ship), not ntpd's built-in "no restriction". Unlike in ntpd, `restrict` only
//!   concerns the clients rntpd serves; it never blocks the replies of
//!   rntpd's own `server`s and `pool`s.
//!
//!   | flag | meaning |
//!   |---|---|
//!   | `ignore` | drop every packet from these clients |
//!   | `noserve` | do not serve them time |
//!   | `noquery` | refuse ntpq-style queries (mode 6 and 7) |
//!   | `kod` | send a kiss-o'-death packet instead of dropping silently (with `limited` or `noserve`) |
//!   | `limited` | rate-limit these clients as set by `discard` |
//!   | `notrust` | serve only requests signed with a trusted key; requests without a valid MAC are dropped (a MAC that does not verify still gets a crypto-NAK) |
//!   | `nomodify` | refuse run-time configuration (`ntpq :config`), even signed with the `controlkey` |
//!
//!   These ntpd/NTPsec flags are accepted **silently and ignored**:
//!   `notrap`, `nopeer`, `noepeer`, `lowpriotrap` and
//!   `ippeerlimit N` restrict features rntpd does not have (traps,
//!   symmetric peers), so there is nothing to restrict. `nomrulist` is not enforced yet:
//!   `ntpq -c mrulist` is answered to whoever may query (use `noquery`). `ntpport` (match only clients sending from port
//!   123), `serverresponse fuzz` (blur the low bits of reply timestamps) and
//!   `version` (refuse clients of other NTP versions) are ignored as well:
//!   a line with `ntpport` applies to clients on any port, replies are not
//!   fuzzed, and clients of every NTP version are served.
//!
//!   `mssntp` (Microsoft's MS-SNTP signing) produces a warning and is
//!   ignored (the rest of the line applies). `flake` produces a warning
//!   ("not supported yet") and is ignored. An unknown flag is an error.
//!
//!   `restrict source ...` (rules for the servers a `pool` finds) and
//!   `restrict HOSTNAME ...` (rntpd does not resolve names while reading the
//!   configuration) produce a warning and the line is ignored.
//!   `delrestrict` and `unrestrict` are not supported yet (warning, line
//!   ignored).
//!
//! * `discard [average A] [minimum M] [monitor N]` — the rate limit for
//!   `limited` clients; several `discard` lines combine.
//!
//!   | keyword | meaning | range | default |
//!   |---|---|---|---|
//!   | `average` | log2 of the shortest average interval between a client's requests, in seconds | 0-16 | 3 (8 s) |
//!   | `minimum` | shortest interval between two requests of a client, in seconds | 0-255 | 2 |
//!
//!   `monitor N` is accepted with a warning ("not supported yet") and its
//!   value is ignored.
//!
//! ## Monitoring
//!
//! ntpq and check_ntp_peer (mode 6) need no directive: rntpd answers them
//! on its `interface listen` addresses, from loopback by default (other
//! clients need a `restrict` line without `noquery`; see `docs/mode6.md`).
//!
//! * `statsdir PATH` — where statistics files are written (default
//!   `/var/log/rntpd`). Given twice, the last one wins (with a warning).
//!
//! * `statistics NAME ...` — write these statistics files: `peerstats`
//!   (one line per sample of each server), `loopstats` (one line per clock
//!   update), `sysstats` (server counters, hourly), all three in ntpd's
//!   formats so that NTPsec's `ntpviz` and existing scripts read them, and
//!   `sourcestats` (**rntpd extension**: DNS lookups and pool events). The
//!   ntpd files rntpd does not write (`clockstats`, `rawstats`,
//!   `cryptostats`, `protostats`, `timingstats`, `usestats`) are accepted
//!   with a warning. Nothing is written without a `statistics` or `filegen
//!   ... enable` line. Formats: `docs/metrics.md`.
//!
//! * `filegen NAME [file PREFIX] [type day] [link|nolink] [enable|disable]`
//!   — ntpd's per-file settings. Files are named `PREFIX.YYYYMMDD` (UTC)
//!   and a new one starts every day; `PREFIX` (default: `NAME`, a plain
//!   file name) is kept as a symbolic link to the current one unless
//!   `nolink`. `type day` is the only rotation; ntpd's `none`, `pid`,
//!   `week`, `month`, `year` and `age` are accepted with a warning and
//!   rotate by day too. `enable` writes the file as `statistics NAME` does,
//!   `disable` stops it; the last word given wins.
//!
//! * `metrics ADDRESS [port N]` — **rntpd extension**: serve Prometheus /
//!   OpenMetrics metrics over HTTP at `http://ADDRESS:N/metrics` (default
//!   port 9975). `ADDRESS` must be a loopback address (`127.0.0.1`, `::1`):
//!   the endpoint has no access control, so publish it through a proxy if
//!   it must be scraped from elsewhere. Off without this line. The metrics
//!   are listed in `docs/metrics.md`.
//!
//! ## Authentication
//!
//! rntpd authenticates with symmetric keys (RFC 5905 MACs: MD5, SHA1, and
//! RFC 8573's AES-128-CMAC), as ntpd, NTPsec and chrony do; see
//! `docs/auth.md`.
//!
//! * `keys PATH` — the key file, in ntp.keys(5) or chrony syntax (`ID TYPE
//!   KEY`, `ID TYPE HEX:KEY`, ...). It is read when rntpd starts and by
//!   `rntpctl validate`: an error in it stops the start (with
//!   `FILE:LINE:COL`) when a line needs keys (`key N`, `manycastserver`),
//!   and is a warning otherwise (rntpd then runs without keys, as ntpd
//!   does); a key a source uses must be in it. It must be a regular file of
//!   at most 1 MiB and should not be readable by every user (warning).
//!   Given twice, the last one wins (with a warning).
//!
//! * `trustedkey ID...` — the keys that may authenticate anything; a key
//!   that is in the file but not listed here is never used. NTPsec's ranges
//!   are accepted: `trustedkey 1 2 (10 ... 20)`. IDs from 1 to 4294967295
//!   (ntpd and NTPsec use up to 65535). Several lines accumulate.
//!
//! * `controlkey ID` — the key `ntpq :config` requests must be signed with
//!   (`ntpq -k KEYFILE -a ID -c ":config pool pool.example iburst"`). It
//!   must be trusted. Without it, run-time configuration over mode 6 is
//!   refused. `:config` accepts `server`, `pool` and `manycastclient` lines
//!   and `unpeer NAME|ADDRESS|ID` (which removes a pool with its members);
//!   its changes last until rntpd restarts. Clients with `restrict ...
//!   nomodify` are refused whatever key they use.
//!
//! * `requestkey ID` — ntpd's key for ntpdc (mode 7); rntpd never answers
//!   mode 7, so the line is accepted with a warning and not used.
//!
//! `key N` on a source line signs its requests with key N and drops every
//! reply that does not carry a valid MAC of key N (counted by reason). N
//! must be listed by `trustedkey`, and the file must have a `keys` line;
//! otherwise the line is an error. As a server, rntpd answers a request
//! signed with a trusted key with a reply signed with the same key, and a
//! request whose MAC does not verify with a crypto-NAK.
//!
//! ## Manycast
//!
//! ntpd's manycast, authenticated: clients find servers by sending a
//! keyed request to a multicast group; servers that hold the key answer by
//! unicast; the client polls them like the members of a pool. See
//! `docs/manycast.md`.
//!
//! * `manycastclient GROUP key N [OPTIONS]` — a source like a `pool` whose
//!   members are the servers that answer solicitations sent to `GROUP` (an
//!   IPv4 or IPv6 multicast address, e.g. `239.1.1.1` or `ff15::101`). `key
//!   N` is required (rntpd refuses unauthenticated manycast: anyone on the
//!   group could become a time source). The options of `pool` apply
//!   (`maxsources`, `iburst`, `minpoll`, ...; `port N` is the port
//!   solicitations are sent to), plus `ttl N` (1 to 255, default 127): the
//!   largest TTL (IPv6 hop limit) of a solicitation.
//!
//! * `manycastserver GROUP... [port N]` — answer solicitations sent to
//!   these groups (default port 123, `port N` an **rntpd extension**), by
//!   unicast, only when they are signed with a trusted key, and only while
//!   rntpd has time to give. Needs `keys` and `trustedkey`, and an
//!   `interface listen` address (clients poll the servers they find there).
//!
//! * `ttl N...` — the TTLs a solicitation round steps through, increasing,
//!   at most 8 values from 1 to 255 (ntpd's `ttl`). Default: 31, 63, 95,
//!   127, 159, 191, 223, 255, each capped by the `manycastclient`'s `ttl`.
//!
//! ## Directives accepted with a warning
//!
//! Everything else that ntpd 4.2.8 or NTPsec understand is reported as
//! "`pidfile` is not supported by rntpd yet; line ignored" and the file
//! still loads: `authenticate`, `automax`, `broadcast`, `broadcastclient`,
//! `broadcastdelay`, `calldelay`, `crypto`, `delrestrict`,
//! `device`, `disable`, `dscp`, `enable`, `end`, `extra`,
//! `fudge`, `ident`, `keysdir`, `mdnstries`,
//! `mru`, `multicastclient`, `nic`, `nonvolatile`, `nts`, `ntsport`,
//! `ntpsigndsocket`, `phone`, `pidfile`, `pollskewlist`, `qos`,
//! `refclock`, `reset`, `revoke`, `rlimit`, `saveconfigdir`,
//! `serverresponse`, `setvar`, `simulate`, `tick`,
//! `trap`, `unconfig`, `unpeer`, `unrestrict`.
//!
//! ## Errors
//!
//! A directive nobody knows, a bad or missing value, an unknown option, an
//! option asking for Autokey or NTS, a key that is not in `trustedkey` or
//! without a `keys` line, an unauthenticated `manycastclient`, an include
//! failure, a file or line over a limit and a failed cross-field check are
//! errors: loading fails and every
//! error is listed as `FILE:LINE:COL: error: MESSAGE` followed by the line
//! and a caret under the offending word. A problem with a whole file (it
//! cannot be read, or is too large) is listed as `FILE: error: MESSAGE`.
//!
//! # Limits
//!
//! So that a hostile or broken file can neither hang nor exhaust the memory
//! of `rntpd` or `rntpctl validate`, reading is bounded. Going over a limit
//! is an error at `file:line:col` (the `includefile` line for an include),
//! except the diagnostics cap, which only shortens the report.
//!
//! | limit | value | what happens |
//! |---|---|---|
//! | file type | regular files only | a directory, FIFO, socket or device is refused at once (never opened for a blocking read) |
//! | configuration size ([`MAX_CONFIG_BYTES`]) | 1 MiB, all files together, an include counted each time it is read | error; a larger file is not read at all |
//! | line length ([`MAX_LINE_BYTES`]) | 4096 bytes, comments included | error; the line is ignored |
//! | words per line ([`MAX_WORDS_PER_LINE`]) | 64 (directive, options and values) | error; the line is ignored |
//! | directives ([`MAX_DIRECTIVES`]) | 10 000 lines that are not blank or comments, all files together | error; reading stops |
//! | include depth ([`MAX_INCLUDE_DEPTH`]) | 10 levels below the top file | error at the deeper `includefile` |
//! | includes ([`MAX_INCLUDES`]) | 256 `includefile` reads | error at the next `includefile` |
//! | source files ([`MAX_SOURCE_FILES`]) | 256 `*.sources` files in the `sourcedir` directories together, at most 1 MiB together | error |
//! | diagnostics ([`MAX_DIAGNOSTICS`]) | 100 errors and 100 warnings listed | the rest are counted in one final "N more diagnostics not shown" |
//!
//! Diagnostics do not copy their line: they share the file's text and show
//! the line (a window of it, for a long line) only when displayed. Nothing
//! in [`Config`] refers to the text or to the diagnostics, so a daemon can
//! drop [`Loaded::warnings`] once it has logged them. A rejected 96 KB line
//! costs about 200 KB of memory at its peak; the largest hostile file
//! accepted for reading (1 MiB, every word an unknown option) about 1.1 MB.

mod config;
mod error;
mod host;
pub mod keys;
mod known;
pub mod leapfile;
mod lex;
pub mod node;
mod raw;
mod resolve;
pub mod runtime;
mod sourcedir;

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

pub use config::{
    AddressFamily, AuthConfig, Config, DiscardConfig, FileGenConfig, KeysFileConfig, ListenConfig,
    MakeStepConfig, ManycastServerConfig, MetricsConfig, Origin, ResolveConfig, RestrictConfig,
    RestrictFlagsConfig, RestrictTarget, SourceConfig, SourceDirConfig, SourceKind, SourceOptions,
    StatsConfig, StatsKind, TinkerConfig, TosConfig,
};
pub use error::{ConfigErrors, Diagnostic, DiagnosticKind, Expected, Severity, MAX_DIAGNOSTICS};
pub use host::{Host, HostName, HostNameError};
pub use sourcedir::SOURCES_SUFFIX;

/// The configuration rntpd reads when it is started without `-c FILE`, and
/// the one the packaged service uses.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/rntpd/ntp.conf";

/// Most `*.sources` files read from the `sourcedir` directories, all
/// together; more is an error.
pub const MAX_SOURCE_FILES: usize = 256;

/// Largest configuration read, in bytes: the top-level file and every
/// included file together, an include counted each time it is read. Real
/// ntp.conf files are a few kilobytes; the limit keeps `includefile
/// /dev/zero`-like mistakes and hostile files from exhausting memory.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Longest line, in bytes, comments included. A longer line is an error and
/// is not read.
pub const MAX_LINE_BYTES: usize = 4096;

/// Most words (directive, options and values) on one line. A line with more
/// is an error and is not read.
pub const MAX_WORDS_PER_LINE: usize = 64;

/// Most directive lines (not counting blank and comment lines) in all files
/// together. Reading stops with an error after this many.
pub const MAX_DIRECTIVES: usize = 10_000;

/// How deeply `includefile` may nest below the top-level file.
pub const MAX_INCLUDE_DEPTH: usize = 10;

/// Most `includefile` reads in one configuration (a file included twice
/// counts twice), so that files including each other side by side cannot
/// fan out exponentially.
pub const MAX_INCLUDES: usize = 256;

/// A configuration that loaded, with the warnings found on the way.
///
/// The warnings share the files' text with each other but nothing in
/// [`Config`] refers to them: a daemon can keep the `config` and drop the
/// `warnings` (and with them the text) once they are logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The typed configuration.
    pub config: Config,
    /// Everything that was ignored or looked odd, in file order. At most
    /// [`MAX_DIAGNOSTICS`], then one final [`DiagnosticKind::MoreNotShown`].
    pub warnings: Vec<Diagnostic>,
}

impl Loaded {
    /// How many warnings were found, including those not listed.
    pub fn warning_count(&self) -> usize {
        error::warning_count(&self.warnings)
    }
}

/// Reads `path` and its includefiles from the file system and parses them.
///
/// Only regular files are read: a directory, FIFO, socket or device (such as
/// `/dev/zero`) is refused at once, without blocking, with an error naming
/// the file (or the `includefile` line that names it). Files are opened
/// non-blocking and checked again after opening, so a file swapped for a
/// FIFO in between is refused too. The limits ([`MAX_CONFIG_BYTES`] and the
/// others) apply.
///
/// Then the `*.sources` files of every `sourcedir` are read (see
/// [`Config::sourcedirs`]) and their sources appended to
/// [`Config::sources`], in directory order, then file-name order.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigErrors> {
    let text = match read_config_file(path) {
        Ok(text) => text,
        Err(e) => {
            return Err(ConfigErrors {
                errors: vec![Diagnostic::whole_file(
                    path.to_path_buf(),
                    DiagnosticKind::ReadFailed { reason: e.to_string() },
                )],
                warnings: Vec::new(),
            });
        }
    };
    let loaded = parse_str(path, &text, &mut |p| read_config_file(p))?;
    sourcedir::read_all(loaded, &mut sourcedir::list_dir, &mut |p| read_config_file(p))
}

/// Reads one configuration file: a regular file of at most
/// [`MAX_CONFIG_BYTES`] bytes of UTF-8. Never blocks on a FIFO and never
/// reads a device.
fn read_config_file(path: &Path) -> io::Result<String> {
    // Refuse special files before opening them: opening a FIFO for reading
    // blocks until a writer appears, and opening some devices has effects.
    check_regular(&std::fs::metadata(path)?)?;
    let file = open_nonblocking(path)?;
    // The path may have been replaced between the two calls; the open file
    // is what gets read, so check it (fstat) too.
    let metadata = file.metadata()?;
    check_regular(&metadata)?;
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0).min(1 << 20));
    file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        // It grew after the size check.
        return Err(too_large(format!("file has more than {MAX_CONFIG_BYTES} bytes")));
    }
    String::from_utf8(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not valid UTF-8 (bad byte at offset {})", e.utf8_error().valid_up_to()),
        )
    })
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: a FIFO swapped in after the check must not block the open
    // (it has no effect on regular files). O_NOCTTY: a terminal device must
    // never become the daemon's controlling terminal.
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> io::Result<File> {
    File::open(path)
}

/// Refuses anything but a regular file of at most [`MAX_CONFIG_BYTES`].
fn check_regular(metadata: &Metadata) -> io::Result<()> {
    let file_type = metadata.file_type();
    if file_type.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "is a directory, not a regular file",
        ));
    }
    if !file_type.is_file() {
        let what = special_file_kind(metadata);
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "is {what}, not a regular file; rntpd reads configuration only from regular files"
            ),
        ));
    }
    if metadata.len() > MAX_CONFIG_BYTES {
        return Err(too_large(format!("file is {} bytes", metadata.len())));
    }
    Ok(())
}

/// `what` ("file is N bytes"), then the limit.
fn too_large(what: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{what}; rntpd reads at most {MAX_CONFIG_BYTES} bytes of configuration"),
    )
}

/// What kind of special file this is, for the message.
#[cfg(unix)]
fn special_file_kind(metadata: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = metadata.file_type();
    if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_file_kind(_: &Metadata) -> &'static str {
    "a special file"
}

/// Parses `text` as the contents of `file`. Pure: an `includefile` is read
/// by calling `include` with the resolved path (relative paths are joined to
/// `file`'s directory); `file` itself is only used in messages and for that
/// join. The limits ([`MAX_CONFIG_BYTES`] and the others) apply to `text`
/// and to whatever `include` returns. `sourcedir` lines are only recorded
/// ([`Config::sourcedirs`]); [`load_file`] reads them.
pub fn parse_str(
    file: &Path,
    text: &str,
    include: &mut dyn FnMut(&Path) -> io::Result<String>,
) -> Result<Loaded, ConfigErrors> {
    parse(file, text, include, false)
}

/// Parses `text` as a `*.sources` file of a `sourcedir` (see
/// [`Config::sourcedirs`]): only `server`, `pool` and `peer` lines (and
/// comments) are allowed; any other directive, `includefile` included, is an
/// error. Pure, with the same limits as [`parse_str`].
pub fn parse_sources_str(file: &Path, text: &str) -> Result<Loaded, ConfigErrors> {
    parse(
        file,
        text,
        &mut |_: &Path| Err(io::Error::other("not allowed in a *.sources file")),
        true,
    )
}

fn parse(
    file: &Path,
    text: &str,
    include: &mut dyn FnMut(&Path) -> io::Result<String>,
    sources_only: bool,
) -> Result<Loaded, ConfigErrors> {
    let mut diags = error::Diags::new(file);
    if text.len() as u64 > MAX_CONFIG_BYTES {
        diags.push(error::Pending {
            seq: 0,
            diag: Diagnostic::whole_file(
                file.to_path_buf(),
                DiagnosticKind::ConfigTooLarge {
                    path: file.to_path_buf(),
                    total: text.len() as u64,
                    limit: MAX_CONFIG_BYTES,
                },
            ),
        });
        let (errors, warnings) = diags.into_sorted();
        return Err(ConfigErrors { errors, warnings });
    }
    // A `*.sources` file is checked like a run-time line: its `key N` is checked against the
    // keys of the whole configuration by the daemon (and `rntpctl validate`).
    let resolver =
        if sources_only { resolve::Resolver::runtime() } else { resolve::Resolver::default() };
    parse_with(file, text, include, resolver, sources_only)
}

/// [`parse_str`] with a given phase-2 resolver (a whole file, or one run-time line), and
/// only source lines allowed when `sources_only`.
fn parse_with(
    file: &Path,
    text: &str,
    include: &mut dyn FnMut(&Path) -> io::Result<String>,
    mut resolver: resolve::Resolver,
    sources_only: bool,
) -> Result<Loaded, ConfigErrors> {
    let mut diags = error::Diags::new(file);
    raw::read(file, Arc::from(text), include, &mut diags, &mut |directive, diags| {
        let keyword = directive.keyword.text.as_str();
        if sources_only && !known::SOURCES_FILE_DIRECTIVES.contains(&keyword) {
            let kind = DiagnosticKind::NotInSourcesFile { directive: keyword.to_string() };
            diags.push(directive.line.at(&directive.keyword, kind));
        } else {
            resolver.directive(directive, diags);
        }
    });
    let config = resolver.finish(&mut diags);
    let failed = diags.has_errors();
    let (errors, warnings) = diags.into_sorted();
    if failed {
        Err(ConfigErrors { errors, warnings })
    } else {
        Ok(Loaded { config, warnings })
    }
}
