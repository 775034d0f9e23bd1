//! How much CPU other processes used while a phase ran, so that a table taken on a shared
//! machine says which of its numbers are suspect. Linux only (/proc); elsewhere it reads 0.

/// CPU seconds used so far: by the whole machine (busy, not idle or iowait) and by this process.
#[derive(Clone, Copy)]
pub struct CpuMark {
    machine: f64,
    me: f64,
}

/// Clock ticks per second of /proc/stat and /proc/self/stat: USER_HZ is 100 on Linux.
const TICK: f64 = 0.01;

pub fn mark() -> CpuMark {
    CpuMark {
        machine: machine_busy(),
        me: self_cpu(),
    }
}

impl CpuMark {
    /// CPU seconds that other processes used since this mark.
    pub fn others_since(&self) -> f64 {
        let now = mark();
        ((now.machine - self.machine) - (now.me - self.me)).max(0.0)
    }

    /// CPU seconds (user and system) that this process used since this mark.
    pub fn own_since(&self) -> f64 {
        self_cpu() - self.me
    }
}

fn machine_busy() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else {
        return 0.0;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| v.get(i))
        .sum::<u64>();
    busy as f64 * TICK
}

fn self_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name may hold spaces; the fields after its closing parenthesis are fixed.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state), so utime (14) and stime (15) are fields[11] and [12].
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|x| x.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 * TICK
}
