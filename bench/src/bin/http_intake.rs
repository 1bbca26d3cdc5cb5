//! `http_intake`: skidder's `http_endpoint` input → `output.logstash` against Filebeat
//! 7.17.29's x-pack `http_endpoint` input → `output.logstash`, both shipping to the same
//! go-lumber server, fed the same bytes: the harness corpus as NDJSON bodies of 100 events
//! POSTed over keep-alive connections.
//!
//! ```sh
//! bash .ci/peers/setup.sh && bash .ci/peers/filebeat-http.sh
//! cargo build --release -p skidder --bin skidder
//! cargo run --release -p skidder-bench --bin http_intake -- [--events N] [--runs R]
//! ```
//!
//! Per run: CPU of the shipper (user + sys from /proc/PID/stat) from the first POST until
//! go-lumber has acknowledged every event (`golumber server --expect N` exits), divided by
//! the events; throughput over the same span. Runs alternate (skidder, Filebeat, skidder,
//! ...) and medians are reported. Then request latency is measured at half of skidder's
//! median maximum rate, paced, for both. The result replaces the section between the
//! `http_intake` markers of BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

const BATCH: usize = 100;
const CONNS: usize = 4;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Skidder,
    Filebeat,
}

struct Paths {
    root: PathBuf,
    work: PathBuf,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// user + system ticks of `pid` (clock ticks, 100 per second on Linux).
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').context("stat format")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

fn ticks_per_s() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

struct Golumber {
    child: Child,
    addr: String,
}

fn golumber(p: &Paths, expect: u64) -> anyhow::Result<Golumber> {
    let mut child = Command::new(p.root.join("tests/peers/golumber/bin/golumber"))
        .args(["server", "--listen", "127.0.0.1:0", "--expect"])
        .arg(expect.to_string())
        .args(["--deadline", "300s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("golumber (bash .ci/peers/setup.sh)")?;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().context("stdout")?),
        &mut line,
    )?;
    let addr = line
        .trim()
        .strip_prefix("READY ")
        .context("golumber READY line")?
        .to_string();
    Ok(Golumber { child, addr })
}

fn shipper(p: &Paths, side: Side, port: u16, lumber: &str, run: usize) -> anyhow::Result<Child> {
    let dir = p.work.join(format!("{side:?}-{run}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    // The same queue and output settings on both sides (Filebeat 7.17's defaults).
    let common = format!(
        "queue.mem.events: 4096\nqueue.mem.flush.min_events: 2048\nqueue.mem.flush.timeout: 1s\n\
         output.logstash:\n  hosts: [\"{lumber}\"]\n  compression_level: 3\n  bulk_max_size: 2048\n\
         logging.level: error\nlogging.metrics.enabled: false\n"
    );
    let (bin, yaml, args): (PathBuf, String, Vec<String>) = match side {
        Side::Skidder => (
            p.root.join("target/release/skidder"),
            format!("skidder.inputs:\n  - type: http_endpoint\n    listen_address: 127.0.0.1\n    listen_port: {port}\n    retry_after: 1s\n{common}"),
            vec!["run".into(), "-e".into(), "-c".into()],
        ),
        Side::Filebeat => (
            p.root.join("tests/peers/filebeat/bin/filebeat-http"),
            format!("filebeat.inputs:\n  - type: http_endpoint\n    listen_address: 127.0.0.1\n    listen_port: \"{port}\"\n{common}"),
            vec![
                "-e".into(),
                "--strict.perms=false".into(),
                "--path.home".into(),
                dir.display().to_string(),
                "--path.data".into(),
                dir.join("data").display().to_string(),
                "-c".into(),
            ],
        ),
    };
    let cfg = dir.join("cfg.yml");
    std::fs::write(&cfg, yaml)?;
    let child = Command::new(&bin)
        .args(&args)
        .arg(&cfg)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(dir.join("stderr"))?))
        .spawn()
        .with_context(|| format!("{}", bin.display()))?;
    // Ready when the port accepts.
    let until = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > until {
            bail!(
                "{side:?} did not listen on {port}; see {}",
                dir.join("stderr").display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

struct Load {
    latencies_us: Vec<u64>,
    retries: usize,
}

/// POSTs every body once over `CONNS` keep-alive connections; `interval` paces each
/// connection (None: as fast as replies come). A 429/503 is retried after 2 ms.
async fn load(
    url: String,
    bodies: Arc<Vec<Vec<u8>>>,
    interval: Option<Duration>,
) -> anyhow::Result<Load> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CONNS {
        let (url, bodies, next) = (url.clone(), Arc::clone(&bodies), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let c = reqwest::Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(1)
                .build()?;
            let mut out = Load {
                latencies_us: Vec::new(),
                retries: 0,
            };
            let mut tick = interval.map(tokio::time::interval);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                if let Some(t) = tick.as_mut() {
                    t.tick().await;
                }
                let started = Instant::now();
                loop {
                    let r = c
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await?;
                    let status = r.status().as_u16();
                    let _ = r.bytes().await?;
                    match status {
                        200 => break,
                        429 | 503 => {
                            out.retries += 1;
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                        s => anyhow::bail!("HTTP {s}"),
                    }
                }
                out.latencies_us.push(started.elapsed().as_micros() as u64);
            }
            Ok::<_, anyhow::Error>(out)
        }));
    }
    let mut all = Load {
        latencies_us: Vec::new(),
        retries: 0,
    };
    for t in tasks {
        let l = t.await??;
        all.latencies_us.extend(l.latencies_us);
        all.retries += l.retries;
    }
    Ok(all)
}

struct Sample {
    events_per_s: f64,
    cpu_us_per_event: f64,
    p99_ms: f64,
    retries: usize,
}

fn one_run(
    p: &Paths,
    rt: &tokio::runtime::Runtime,
    side: Side,
    bodies: &Arc<Vec<Vec<u8>>>,
    events: u64,
    run: usize,
    interval: Option<Duration>,
) -> anyhow::Result<Sample> {
    let mut lumber = golumber(p, events)?;
    let port = free_port()?;
    let mut child = shipper(p, side, port, &lumber.addr, run)?;
    let t0 = Instant::now();
    let c0 = cpu_ticks(child.id())?;
    let l = rt.block_on(load(
        format!("http://127.0.0.1:{port}/"),
        Arc::clone(bodies),
        interval,
    ))?;
    // Delivered: go-lumber exits once it acknowledged `events`.
    let until = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(status) = lumber.child.try_wait()? {
            if !status.success() {
                bail!("go-lumber did not get all {events} events ({status})");
            }
            break;
        }
        if Instant::now() > until {
            bail!("go-lumber still waiting after 300s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let wall = t0.elapsed().as_secs_f64();
    let c1 = cpu_ticks(child.id())?;
    let _ = child.kill();
    let _ = child.wait();
    let mut lat = l.latencies_us;
    lat.sort_unstable();
    let p99 = lat
        .get((lat.len() as f64 * 0.99) as usize)
        .copied()
        .unwrap_or(0) as f64
        / 1000.0;
    Ok(Sample {
        events_per_s: events as f64 / wall,
        cpu_us_per_event: (c1 - c0) as f64 / ticks_per_s() * 1e6 / events as f64,
        p99_ms: p99,
        retries: l.retries,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let mut events: u64 = 200_000;
    let mut runs = 3;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--events" => events = args.next().context("--events N")?.parse()?,
            "--runs" => runs = args.next().context("--runs R")?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("root")?
        .to_path_buf();
    let work = root.join("target/bench/http_intake");
    std::fs::create_dir_all(&work)?;
    let p = Paths {
        root: root.clone(),
        work,
    };
    let corpus = skidder_bench::corpus::generate();
    let batches = (events as usize).div_ceil(BATCH);
    let events = (batches * BATCH) as u64;
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..batches)
            .map(|b| {
                let mut body = String::new();
                for i in 0..BATCH {
                    body.push_str(&corpus[(b * BATCH + i) % corpus.len()]);
                    body.push('\n');
                }
                body.into_bytes()
            })
            .collect(),
    );
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut max: Vec<(Side, Sample)> = Vec::new();
    for run in 0..runs {
        for side in [Side::Skidder, Side::Filebeat] {
            let s = one_run(&p, &rt, side, &bodies, events, run, None)
                .with_context(|| format!("{side:?} run {run}"))?;
            eprintln!(
                "http_intake: {side:?} run {run}: {:.0} events/s, {:.2} µs CPU/event, p99 {:.1} ms, {} retries",
                s.events_per_s, s.cpu_us_per_event, s.p99_ms, s.retries
            );
            max.push((side, s));
        }
    }
    let med = |side: Side, f: &dyn Fn(&Sample) -> f64| {
        median(
            max.iter()
                .filter(|(s, _)| *s == side)
                .map(|(_, x)| f(x))
                .collect(),
        )
    };
    let sk_eps = med(Side::Skidder, &|s| s.events_per_s);
    let fb_eps = med(Side::Filebeat, &|s| s.events_per_s);
    let sk_cpu = med(Side::Skidder, &|s| s.cpu_us_per_event);
    let fb_cpu = med(Side::Filebeat, &|s| s.cpu_us_per_event);
    // Half of skidder's maximum, paced over the connections, for both.
    let half = sk_eps / 2.0;
    let interval = Duration::from_secs_f64(BATCH as f64 * CONNS as f64 / half);
    let mut paced = Vec::new();
    for side in [Side::Skidder, Side::Filebeat] {
        let s = one_run(&p, &rt, side, &bodies, events, runs, Some(interval))
            .with_context(|| format!("{side:?} paced"))?;
        eprintln!(
            "http_intake: {side:?} paced at {half:.0} events/s: {:.0} events/s, p99 {:.2} ms",
            s.events_per_s, s.p99_ms
        );
        paced.push((side, s));
    }
    let section = format!(
        "<!-- http_intake:begin -->\n## HTTP intake: skidder vs Filebeat 7.17.29 `http_endpoint`\n\n\
         `cargo run --release -p skidder-bench --bin http_intake -- --events {events} --runs {runs}`, \
         taken on a shared 2-core AMD EPYC (other engineers' builds ran meanwhile: compare the pair, \
         not the absolute numbers). Each side: its HTTP input → `output.logstash` (compression 3, \
         queue 4096/2048/1s) → go-lumber's server; the same {events} corpus events \
         ({:.0} bytes each) as NDJSON bodies of {BATCH} events, POSTed over {CONNS} keep-alive \
         connections (a 429 is retried after 2 ms, so the latency at the maximum rate includes those waits: skidder answers \"full\" instead of holding the request, Filebeat holds it). CPU is the shipper's user+sys from the first \
         POST until go-lumber acknowledged the last event. Runs alternate; medians of {runs}.\n\n\
         | | events/s | CPU µs/event | p99 request latency at max rate |\n|---|---|---|---|\n\
         | skidder | {sk_eps:.0} | {sk_cpu:.2} | {:.1} ms |\n| Filebeat 7.17.29 | {fb_eps:.0} | {fb_cpu:.2} | {:.1} ms |\n\
         | ratio skidder/Filebeat | {:.2}× | {:.2}× (target ≤ 0.2×) | |\n\n\
         Paced at {half:.0} events/s (half of skidder's median maximum): p99 request latency \
         skidder {:.2} ms (target < 10 ms), Filebeat {:.2} ms.\n<!-- http_intake:end -->\n",
        bytes as f64 / events as f64,
        med(Side::Skidder, &|s| s.p99_ms),
        med(Side::Filebeat, &|s| s.p99_ms),
        sk_eps / fb_eps,
        sk_cpu / fb_cpu,
        paced[0].1.p99_ms,
        paced[1].1.p99_ms,
    );
    print!("{section}");
    write_section(&root.join("BENCHMARKS.md"), &section)?;
    Ok(())
}

/// Replaces the marked section of `path` (or appends it).
fn write_section(path: &Path, section: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    std::fs::write(
        path,
        skidder_bench::sections::splice(&text, "http_intake", section),
    )?;
    Ok(())
}
