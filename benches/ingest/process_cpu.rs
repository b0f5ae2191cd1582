//! CPU time of PostgreSQL's processes, from `/proc`: what a phase cost the server, which the
//! machine's other load does not change (its rate does); and how busy the whole machine
//! was, which says whether a phase had any CPU left to use.

use std::collections::HashMap;
use std::time::Duration;

/// Clock ticks per second of `/proc/PID/stat` times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: u64 = 100;

/// User plus system time of every process named `postgres`, by pid, in ticks.
fn postgres_ticks() -> HashMap<u32, u64> {
    let mut ticks = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return ticks;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`: the fields after the command name, which may hold
        // spaces, start after its closing parenthesis.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if !head.ends_with("(postgres") {
            continue;
        }
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        let time = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        if let (Some(user), Some(system)) = (time(11), time(12)) {
            ticks.insert(pid, user + system);
        }
    }
    ticks
}

/// The PostgreSQL server's CPU time from [`PostgresCpu::start`] on. Processes that exit
/// before [`PostgresCpu::used`] take their time with them, so read it before closing the
/// connections of the phase.
pub struct PostgresCpu {
    before: HashMap<u32, u64>,
}

impl PostgresCpu {
    pub fn start() -> PostgresCpu {
        PostgresCpu {
            before: postgres_ticks(),
        }
    }

    /// CPU time the server's processes used since the start.
    pub fn used(&self) -> Duration {
        let ticks: u64 = postgres_ticks()
            .into_iter()
            .map(|(pid, now)| now.saturating_sub(self.before.get(&pid).copied().unwrap_or(0)))
            .sum();
        Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
    }
}

/// Busy and total ticks of all the machine's CPUs together, from the `cpu` line of
/// `/proc/stat` (idle and I/O wait count as not busy).
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is within user).
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4)?;
    Some((total - idle, total))
}

/// The share of the machine's CPU time that was busy from [`MachineCpu::start`] on.
pub struct MachineCpu {
    before: Option<(u64, u64)>,
}

impl MachineCpu {
    pub fn start() -> MachineCpu {
        MachineCpu {
            before: machine_ticks(),
        }
    }

    /// Busy time over all time, 0 to 1, since the start (0 when `/proc/stat` is unreadable).
    pub fn busy(&self) -> f64 {
        match (self.before, machine_ticks()) {
            (Some((busy0, total0)), Some((busy1, total1))) if total1 > total0 => {
                busy1.saturating_sub(busy0) as f64 / (total1 - total0) as f64
            }
            _ => 0.0,
        }
    }
}
