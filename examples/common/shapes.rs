//! Values shaped like a real host's, for the examples that build stores:
//! percentages with two decimals in a random walk, free memory in 4 KiB
//! pages, request and event counts around a rate, warnings and errors
//! mostly 0. Deterministic, no dependency.

#![allow(dead_code)] // each example uses part of it

/// xorshift64*: enough randomness for shapes.
pub struct Random(pub u64);

impl Random {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A step of a random walk: -1, 0 or 1 times `size`, mostly 0.
    fn step(&mut self, size: f64) -> f64 {
        match self.next() % 4 {
            0 => -size,
            1 => size,
            _ => 0.0,
        }
    }
}

/// One host's state between samples.
pub struct Host {
    pub name: String,
    cpu: f64,
    memory: f64,
    free: f64,
}

impl Host {
    /// The `index`th host of a fleet, named `node-00042`.
    pub fn nth(index: usize) -> Host {
        Host {
            name: format!("node-{index:05}"),
            cpu: 20.0 + (index % 50) as f64,
            memory: 40.0 + (index % 30) as f64,
            free: 8_000_000_000.0 - (index as f64) * 4096.0,
        }
    }

    /// The next sample's 10 built-in fields.
    pub fn next(&mut self, random: &mut Random) -> [(&'static str, f64); 10] {
        self.cpu =
            (self.cpu + random.step(0.25) * (1 + random.next() % 8) as f64).clamp(0.0, 100.0);
        self.memory = (self.memory + random.step(0.01)).clamp(5.0, 95.0);
        self.free = (self.free + random.step(4096.0) * (random.next() % 16) as f64).max(0.0);
        let requests = 80 + random.next() % 40;
        let latency = requests * (20 + random.next() % 10);
        let events = 30 + random.next() % 20;
        let warnings = u64::from(random.next().is_multiple_of(20));
        let errors = u64::from(random.next().is_multiple_of(100));
        [
            ("cpu.usage", round(self.cpu, 2)),
            ("mem.usage", round(self.memory, 2)),
            ("mem.free", self.free),
            ("requests.count", requests as f64),
            ("requests.latency_sum", latency as f64),
            (
                "requests.latency_avg",
                round(latency as f64 / requests as f64, 1),
            ),
            ("eventsIn.count", events as f64),
            ("eventsOut.count", (events - random.next() % 3) as f64),
            ("warnings.count", warnings as f64),
            ("errors.count", errors as f64),
        ]
    }
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}
