//! The machine a measurement comes from: CPU model and the SIMD features the deflate
//! backends choose their code by. Numbers from two CPUs are not comparable, so every
//! report and every target verdict carries this.

/// CPU features that decide which deflate code runs (ISA-L igzip, libdeflate and zlib-rs
/// dispatch on them at run time), in the order they are reported.
pub const SIMD: [&str; 8] = [
    "sse4.2",
    "pclmulqdq",
    "avx2",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "vaes",
    "vpclmulqdq",
];

/// What this machine is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// `model name` of /proc/cpuinfo, or "unknown CPU".
    pub cpu: String,
    /// Each of [`SIMD`] and whether the CPU (and the OS) has it.
    pub features: Vec<(&'static str, bool)>,
    /// Cores available to this process.
    pub cores: usize,
}

impl Machine {
    /// Whether the CPU has `feature` (one of [`SIMD`]).
    pub fn has(&self, feature: &str) -> bool {
        self.features.iter().any(|(f, on)| *f == feature && *on)
    }

    /// The widest igzip code path ISA-L's run-time dispatch can pick with these features
    /// (its `_06` AVX-512 kernels need F, BW and VL; `_04` needs AVX2).
    pub fn igzip_path(&self) -> &'static str {
        if self.has("avx512f") && self.has("avx512bw") && self.has("avx512vl") {
            "AVX-512"
        } else if self.has("avx2") {
            "AVX2"
        } else if self.has("sse4.2") {
            "SSE4"
        } else {
            "base"
        }
    }

    /// "AVX2, SSE4.2, PCLMULQDQ (no AVX-512F, ...)": what is there, then what is not.
    pub fn features_text(&self) -> String {
        let name = |f: &str| f.to_ascii_uppercase().replace("AVX512", "AVX-512");
        let on: Vec<String> = self
            .features
            .iter()
            .filter(|(_, on)| *on)
            .map(|(f, _)| name(f))
            .collect();
        let off: Vec<String> = self
            .features
            .iter()
            .filter(|(_, on)| !*on)
            .map(|(f, _)| name(f))
            .collect();
        let mut s = if on.is_empty() {
            "none of the listed".to_string()
        } else {
            on.join(", ")
        };
        if !off.is_empty() {
            s.push_str(&format!(" (no {})", off.join(", ")));
        }
        s
    }
}

/// The CPU model named by /proc/cpuinfo.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

#[cfg(target_arch = "x86_64")]
fn detected(feature: &str) -> bool {
    match feature {
        "sse4.2" => std::arch::is_x86_feature_detected!("sse4.2"),
        "pclmulqdq" => std::arch::is_x86_feature_detected!("pclmulqdq"),
        "avx2" => std::arch::is_x86_feature_detected!("avx2"),
        "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
        "avx512bw" => std::arch::is_x86_feature_detected!("avx512bw"),
        "avx512vl" => std::arch::is_x86_feature_detected!("avx512vl"),
        "vaes" => std::arch::is_x86_feature_detected!("vaes"),
        "vpclmulqdq" => std::arch::is_x86_feature_detected!("vpclmulqdq"),
        _ => false,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detected(_feature: &str) -> bool {
    false
}

/// This machine.
pub fn detect() -> Machine {
    Machine {
        cpu: cpu_model(),
        features: SIMD.iter().map(|f| (*f, detected(f))).collect(),
        cores: std::thread::available_parallelism().map_or(0, usize::from),
    }
}

/// One line: CPU, cores, SIMD features and the igzip path they allow.
pub fn describe() -> String {
    let m = detect();
    format!(
        "Machine: {}, {} cores available; SIMD: {}; ISA-L igzip dispatches to its {} code",
        m.cpu,
        m.cores,
        m.features_text(),
        m.igzip_path()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_text_names_what_is_there_and_what_is_not() {
        let m = Machine {
            cpu: "AMD EPYC 7B13".into(),
            features: vec![("avx2", true), ("avx512f", false), ("vaes", true)],
            cores: 2,
        };
        assert_eq!(m.features_text(), "AVX2, VAES (no AVX-512F)");
        assert_eq!(m.igzip_path(), "AVX2");
        let intel = Machine {
            features: vec![
                ("avx2", true),
                ("avx512f", true),
                ("avx512bw", true),
                ("avx512vl", true),
            ],
            ..m
        };
        assert_eq!(intel.igzip_path(), "AVX-512");
    }

    #[test]
    fn detect_lists_every_feature_once() {
        let m = detect();
        let names: Vec<&str> = m.features.iter().map(|(f, _)| *f).collect();
        assert_eq!(names, SIMD);
        assert!(!m.cpu.is_empty());
    }
}
