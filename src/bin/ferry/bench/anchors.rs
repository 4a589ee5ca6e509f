//! Ray's figures on a 2-core machine, for the ratio table.

/// `(metric name, Ray's mean per second, Ray's std)`, copied from
/// /work/shared/anchors/ray-2.60.0-microbenchmark-2core.txt (`ray
/// microbenchmark` of Ray 2.60.0, pip, Python 3.11, on a 2-core 24 GiB VM of
/// the same kind that runs `ferry bench` here).
pub(crate) const RAY_2_60_0_2CORE: &[(&str, f64, f64)] = &[
    ("1:1 actor calls async", 5747.42, 247.81),
    ("1:1 actor calls concurrent", 6005.68, 203.35),
    ("1:1 actor calls sync", 1334.6, 6.97),
    ("1:1 async-actor calls async", 2673.8, 72.21),
    ("1:1 async-actor calls sync", 927.12, 17.02),
    ("1:1 async-actor calls with args async", 2123.44, 114.66),
    ("1:n actor calls async", 5025.67, 500.86),
    ("1:n async-actor calls async", 2848.45, 87.48),
    ("multi client put calls (Plasma Store)", 1541.61, 65.45),
    ("multi client put gigabytes", 9.93, 3.06),
    ("multi client tasks async", 2153.61, 44.72),
    ("n:n actor calls async", 5776.13, 252.94),
    ("n:n actor calls with arg async", 1823.72, 87.32),
    ("n:n async-actor calls async", 2801.18, 148.47),
    ("placement group create/removal", 531.3, 5.89),
    ("single client get calls (Plasma Store)", 12996.0, 153.24),
    ("single client get object containing 10k refs", 17.57, 0.38),
    ("single client put calls (Plasma Store)", 2589.73, 139.9),
    ("single client put gigabytes", 2.66, 1.58),
    ("single client tasks and get batch", 2.21, 0.08),
    ("single client tasks async", 2081.62, 39.66),
    ("single client tasks sync", 621.25, 8.6),
    ("single client wait 1k refs", 1.98, 0.05),
];

/// Ray's mean and standard deviation for a metric name, if the anchor file
/// has it. A metric "… across ranks" is compared with Ray's metric of the
/// same name without those words: Ray's multi-client metrics run their
/// clients as worker processes of one node, as Ferry's ranks on one node.
pub(crate) fn ray_anchor(name: &str) -> Option<(f64, f64)> {
    let name = name.replace(" across ranks", "");
    RAY_2_60_0_2CORE
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|&(_, mean, std)| (mean, std))
}

/// Ray's mean for a metric name, if the anchor file has it.
pub(crate) fn ray_per_second(name: &str) -> Option<f64> {
    ray_anchor(name).map(|(mean, _)| mean)
}
