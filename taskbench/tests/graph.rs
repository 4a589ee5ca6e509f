//! Task graphs: counts worked out by hand, dependencies against reverse
//! dependencies, and flag parsing.

use ferry_taskbench::{DependenceType, GraphError, Kernel, KernelType, TaskGraph};

fn graph(d: DependenceType, steps: usize, width: usize) -> TaskGraph {
    let g = TaskGraph::new(steps, width, d);
    g.validate().expect("valid graph");
    g
}

fn counts(g: &TaskGraph) -> (u64, u64) {
    (g.total_tasks(), g.total_dependencies())
}

// ---- Counts by hand ----

#[test]
fn trivial_has_no_edges() {
    // 3 steps x 4 points = 12 tasks, no dependencies.
    assert_eq!(counts(&graph(DependenceType::Trivial, 3, 4)), (12, 0));
}

#[test]
fn no_comm_reads_itself() {
    // Steps 1 and 2 each: 4 points x 1 input = 4; 2 x 4 = 8.
    assert_eq!(counts(&graph(DependenceType::NoComm, 3, 4)), (12, 8));
}

#[test]
fn stencil_1d_counts() {
    // Each of steps 1, 2: 4 points x 3 inputs - 2 missing at the edges = 10;
    // 2 x 10 = 20.
    let g = graph(DependenceType::Stencil1d, 3, 4);
    assert_eq!(counts(&g), (12, 20));
    assert_eq!(g.dependencies(1, 0), vec![0, 1]);
    assert_eq!(g.dependencies(2, 2), vec![1, 2, 3]);
    assert_eq!(g.dependencies(0, 2), Vec::<usize>::new());
    // Width 1: each step 1 point reading itself; 1 x 2 steps = 2.
    assert_eq!(counts(&graph(DependenceType::Stencil1d, 3, 1)), (3, 2));
}

#[test]
fn stencil_1d_periodic_counts() {
    // Width 4: every point has 3 distinct inputs (wrapping); 2 x 4 x 3 = 24.
    let g = graph(DependenceType::Stencil1dPeriodic, 3, 4);
    assert_eq!(counts(&g), (12, 24));
    assert_eq!(g.dependencies(1, 0), vec![0, 1, 3]);
    assert_eq!(g.dependencies(1, 3), vec![2, 3, 0]);
    // Width 2: neighbours {0, 1} for both points, each once: 2 x 2 x 2 = 8.
    assert_eq!(
        counts(&graph(DependenceType::Stencil1dPeriodic, 3, 2)),
        (6, 8)
    );
    // Width 1: only itself: 2 steps x 1 = 2.
    assert_eq!(
        counts(&graph(DependenceType::Stencil1dPeriodic, 3, 1)),
        (3, 2)
    );
}

#[test]
fn dom_counts() {
    // Width 3, 5 steps. Active points (offset = max(0, t + 3 - 5),
    // width = min(3, t + 1, 5 - t)): t0 {0}, t1 {0,1}, t2 {0,1,2},
    // t3 {1,2}, t4 {2}: 1 + 2 + 3 + 2 + 1 = 9 tasks.
    // Point p reads {p-1, p} within the previous step's points:
    // t1: p0 {0}, p1 {0} = 2; t2: p0 {0}, p1 {0,1}, p2 {1} = 4;
    // t3: p1 {0,1}, p2 {1,2} = 4; t4: p2 {1,2} = 2; total 12.
    let g = graph(DependenceType::Dom, 5, 3);
    assert_eq!(counts(&g), (9, 12));
    assert_eq!(g.active_points(3), 1..3);
    assert_eq!(g.dependencies(1, 1), vec![0]);
    assert_eq!(g.reverse_dependencies(2, 0), vec![1]);
}

#[test]
fn tree_counts() {
    // Width 4, 4 steps: widths 1, 2, 4, 4 = 11 tasks; every point of steps
    // 1..3 reads its parent p / 2: 2 + 4 + 4 = 10.
    let g = graph(DependenceType::Tree, 4, 4);
    assert_eq!(counts(&g), (11, 10));
    assert_eq!(g.dependencies(2, 3), vec![1]);
    assert_eq!(g.reverse_dependencies(1, 1), vec![2, 3]);
    // Step 2 -> 3: points 2, 3 have children 4..7, outside the width.
    assert_eq!(g.reverse_dependencies(2, 3), Vec::<usize>::new());
}

#[test]
fn fft_counts() {
    // Width 4: ceil(log2 4) = 2 stages. Step 1 uses stage 0 (distance 1):
    // p0 {0,1}, p1 {0,1,2}, p2 {1,2,3}, p3 {2,3} = 10. Step 2 uses stage 1
    // (distance 2): p0 {0,2}, p1 {1,3}, p2 {0,2}, p3 {1,3} = 8. Total 18.
    let g = graph(DependenceType::Fft, 3, 4);
    assert_eq!(g.max_dependence_sets(), 2);
    assert_eq!(counts(&g), (12, 18));
    assert_eq!(g.dependencies(2, 2), vec![0, 2]);
    // Step 3 is stage 0 again.
    assert_eq!(g.dependence_set_at_timestep(3), 0);
    // Width 5 needs 3 stages; width 1 still has one.
    assert_eq!(graph(DependenceType::Fft, 3, 5).max_dependence_sets(), 3);
    assert_eq!(counts(&graph(DependenceType::Fft, 3, 1)), (3, 2));
}

#[test]
fn all_to_all_counts() {
    // 2 steps x 4 points x 4 inputs = 32.
    assert_eq!(counts(&graph(DependenceType::AllToAll, 3, 4)), (12, 32));
}

#[test]
fn nearest_counts() {
    // Radix 3 reads [p-1, p+1]: as stencil_1d, 20.
    let mut g = graph(DependenceType::Nearest, 3, 4);
    assert_eq!(counts(&g), (12, 20));
    // Radix 2 reads [p-1, p]: p0 1, p1..p3 2 each = 7 per step; 2 x 7 = 14.
    g.radix = 2;
    assert_eq!(counts(&g), (12, 14));
    assert_eq!(g.dependencies(1, 2), vec![1, 2]);
    // Radix 5, width 4 reads [p-2, p+2]: p0 3, p1 4, p2 4, p3 3 = 14 per
    // step; 28.
    g.radix = 5;
    assert_eq!(counts(&g), (12, 28));
}

#[test]
fn spread_counts() {
    // Width 4, radix 2, period 2 (at most ceil(4 / 2) = 2). Step 1 (set 1):
    // p reads p and (p + 2 + 1) % 4; step 2 (set 0): p and (p + 2) % 4.
    // 2 distinct inputs per point: 2 steps x 4 x 2 = 16.
    let mut g = TaskGraph::new(3, 4, DependenceType::Spread);
    g.radix = 2;
    g.period = 2;
    g.validate().unwrap();
    assert_eq!(counts(&g), (12, 16));
    assert_eq!(g.dependencies(1, 0), vec![0, 3]);
    assert_eq!(g.dependencies(2, 3), vec![3, 1]);
    assert_eq!(g.timestep_period(), 2);
}

#[test]
fn random_nearest_counts() {
    // Fraction 1 keeps every neighbour: radix 3 is stencil_1d, 20.
    let mut g = graph(DependenceType::RandomNearest, 3, 4);
    g.fraction_connected = 1.0;
    assert_eq!(counts(&g), (12, 20));
    // Fraction 0 keeps only the point itself: 2 x 4 = 8.
    g.fraction_connected = 0.0;
    assert_eq!(counts(&g), (12, 8));
    // In between: between those, and the same every time.
    g.fraction_connected = 0.5;
    g.width = 64;
    g.steps = 10;
    let n = g.total_dependencies();
    assert!((9 * 64..=9 * (64 * 3 - 2)).contains(&n), "{n}");
    assert_eq!(n, g.clone().total_dependencies());
    // Roughly half of the 2 x 9 x 62 + 9 x 2 optional edges are kept.
    let optional = 9 * (64 * 3 - 2) - 9 * 64;
    let kept = n - 9 * 64;
    assert!(
        kept > optional / 4 && kept < optional * 3 / 4,
        "{kept}/{optional}"
    );
}

// ---- Structure, for every type on several shapes ----

fn shapes() -> Vec<TaskGraph> {
    let mut out = Vec::new();
    for d in DependenceType::ALL {
        for (steps, width) in [
            (1, 1),
            (3, 1),
            (4, 2),
            (5, 3),
            (6, 4),
            (9, 7),
            (12, 16),
            (7, 13),
        ] {
            for radix in [1, 2, 3, 5] {
                for period in [1, 2, 3] {
                    for fraction in [0.0, 0.3, 1.0] {
                        let mut g = TaskGraph::new(steps, width, d);
                        g.radix = radix;
                        if d.needs_period() {
                            g.period = period;
                        }
                        g.fraction_connected = fraction;
                        if g.validate().is_ok() && !out.contains(&g) {
                            out.push(g);
                        }
                    }
                }
            }
        }
    }
    out
}

#[test]
fn every_type_has_shapes() {
    let shapes = shapes();
    for d in DependenceType::ALL {
        assert!(
            shapes.iter().filter(|g| g.dependence == d).count() >= 4,
            "{d}"
        );
    }
}

#[test]
fn dependencies_mirror_reverse_dependencies() {
    for g in shapes() {
        for t in 1..g.steps {
            for q in g.active_points(t) {
                for p in g.dependencies(t, q) {
                    assert!(
                        g.reverse_dependencies(t - 1, p).contains(&q),
                        "{g:?}: ({t},{q}) reads {p} but is not its reader"
                    );
                }
            }
            for p in g.active_points(t - 1) {
                for q in g.reverse_dependencies(t - 1, p) {
                    assert!(
                        g.dependencies(t, q).contains(&p),
                        "{g:?}: ({t},{q}) is a reader of {p} but does not read it"
                    );
                }
            }
        }
        // Nobody reads the last step.
        for p in g.active_points(g.steps - 1) {
            assert!(g.reverse_dependencies(g.steps - 1, p).is_empty());
        }
    }
}

#[test]
fn dependencies_are_active_and_distinct() {
    for g in shapes() {
        assert!(g.dependencies(0, 0).is_empty());
        let mut edges = 0u64;
        let mut tasks = 0u64;
        for t in 0..g.steps {
            let active = g.active_points(t);
            assert!(active.end <= g.width, "{g:?} t={t}");
            assert!(!active.is_empty(), "{g:?} t={t}");
            tasks += active.len() as u64;
            let set = g.dependence_set_at_timestep(t);
            assert!(set < g.max_dependence_sets());
            for p in active {
                let deps = g.dependencies(t, p);
                let rdeps = g.reverse_dependencies(t, p);
                for list in [&deps, &rdeps] {
                    let mut sorted = list.clone();
                    sorted.sort_unstable();
                    sorted.dedup();
                    assert_eq!(
                        sorted.len(),
                        list.len(),
                        "{g:?} ({t},{p}) repeats: {list:?}"
                    );
                }
                if t > 0 {
                    let prev = g.active_points(t - 1);
                    assert!(
                        deps.iter().all(|d| prev.contains(d)),
                        "{g:?} ({t},{p}) {deps:?}"
                    );
                }
                let next = g.active_points(t + 1);
                assert!(
                    rdeps.iter().all(|r| next.contains(r)),
                    "{g:?} ({t},{p}) {rdeps:?}"
                );
                edges += deps.len() as u64;
            }
            // Points outside the active range have no edges.
            if g.active_points(t).end < g.width {
                assert!(g.dependencies(t, g.width - 1).is_empty());
            }
        }
        assert_eq!(g.total_tasks(), tasks);
        assert_eq!(g.total_dependencies(), edges);
    }
}

#[test]
fn patterns_repeat_with_their_period() {
    for g in shapes() {
        let period = g.timestep_period();
        for t in 1..g.steps {
            // Compare only where both steps and the steps before them are
            // equally wide (dom's and tree's widths change).
            let same = |u: usize| g.active_points(u) == g.active_points(u + period);
            if t + period < g.steps && same(t) && same(t - 1) {
                for p in g.active_points(t) {
                    assert_eq!(g.dependencies(t, p), g.dependencies(t + period, p), "{g:?}");
                }
            }
        }
    }
}

// ---- Flags ----

fn parse(s: &str) -> Result<TaskGraph, GraphError> {
    TaskGraph::from_flags(s.split_whitespace())
}

#[test]
fn parses_every_flag() {
    let g = parse(
        "-steps 10 -width 8 -type spread -kernel compute_bound -iter 100 -output 64 \
         -radix 2 -period 4 -fraction 0.5",
    )
    .unwrap();
    assert_eq!(g.steps, 10);
    assert_eq!(g.width, 8);
    assert_eq!(g.dependence, DependenceType::Spread);
    assert_eq!(
        g.kernel,
        Kernel {
            kind: KernelType::ComputeBound,
            iterations: 100
        }
    );
    assert_eq!(g.output_bytes, 64);
    assert_eq!(g.radix, 2);
    assert_eq!(g.period, 4);
    assert_eq!(g.fraction_connected, 0.5);
    assert_eq!(g.kernel.flops_per_task(), 2 * 64 * 100 + 64);
}

#[test]
fn defaults_and_names() {
    let g = parse("").unwrap();
    assert_eq!(g, TaskGraph::default());
    assert_eq!((g.steps, g.width, g.radix, g.period), (4, 4, 3, 0));
    assert_eq!(parse("-type random_nearest").unwrap().period, 3);
    for d in DependenceType::ALL {
        assert_eq!(parse(&format!("-type {d} -width 8")).unwrap().dependence, d);
    }
    for k in KernelType::ALL {
        assert_eq!(parse(&format!("-kernel {k}")).unwrap().kernel.kind, k);
    }
    // Owned strings work too.
    let owned: Vec<String> = vec!["-steps".into(), "7".into()];
    assert_eq!(TaskGraph::from_flags(owned).unwrap().steps, 7);
}

#[test]
fn rejects_bad_flags() {
    let out_of_range = |s: &str, want: &str| match parse(s) {
        Err(GraphError::OutOfRange { flag, .. }) => assert_eq!(flag, want, "{s}"),
        other => panic!("{s}: {other:?}"),
    };
    assert_eq!(
        parse("-nodes 2"),
        Err(GraphError::UnknownFlag("-nodes".into()))
    );
    assert_eq!(
        parse("steps 2"),
        Err(GraphError::UnknownFlag("steps".into()))
    );
    assert_eq!(
        parse("-width 4 -steps"),
        Err(GraphError::MissingValue { flag: "-steps" })
    );
    assert_eq!(
        parse("-type"),
        Err(GraphError::MissingValue { flag: "-type" })
    );
    assert_eq!(
        parse("-steps ten"),
        Err(GraphError::BadValue {
            flag: "-steps",
            value: "ten".into()
        })
    );
    assert!(matches!(
        parse("-width -3"),
        Err(GraphError::BadValue { flag: "-width", .. })
    ));
    assert!(matches!(
        parse("-iter 1.5"),
        Err(GraphError::BadValue { flag: "-iter", .. })
    ));
    assert!(matches!(
        parse("-fraction x"),
        Err(GraphError::BadValue {
            flag: "-fraction",
            ..
        })
    ));
    assert_eq!(
        parse("-type ring"),
        Err(GraphError::UnknownType("ring".into()))
    );
    assert_eq!(
        parse("-kernel dgemm"),
        Err(GraphError::UnknownKernel("dgemm".into()))
    );
    out_of_range("-steps 0", "-steps");
    out_of_range("-width 0", "-width");
    out_of_range("-output 8", "-output");
    out_of_range("-fraction 1.5", "-fraction");
    out_of_range("-fraction -0.1", "-fraction");
    out_of_range("-fraction nan", "-fraction");
    out_of_range("-type nearest -radix 0", "-radix");
    out_of_range("-type spread -radix 0", "-radix");
    out_of_range("-type random_nearest -radix 0", "-radix");
    out_of_range("-type spread -width 4 -radix 5 -period 1", "-radix");
    out_of_range("-type spread -period 0", "-period");
    out_of_range("-type random_nearest -period 0", "-period");
    out_of_range("-type stencil_1d -period 2", "-period");
    // ceil(8 / 3) = 3 is spread's largest period at width 8, radix 3.
    out_of_range("-type spread -width 8 -radix 3 -period 4", "-period");
    assert!(parse("-type spread -width 8 -radix 3 -period 3").is_ok());
    // Radix 0 is fine where it is not used.
    assert!(parse("-type stencil_1d -radix 0").is_ok());
    // Errors read well.
    let e: Box<dyn std::error::Error> = Box::new(parse("-steps 0").unwrap_err());
    assert_eq!(e.to_string(), "flag \"-steps 0\": must be at least 1");
    assert!(
        parse("-type ring")
            .unwrap_err()
            .to_string()
            .contains("stencil_1d")
    );
}

#[test]
fn kernels_run() {
    let mut scratch = vec![1u8; 256];
    for kind in KernelType::ALL {
        let k = Kernel {
            kind,
            iterations: 10,
        };
        k.execute(&mut scratch);
        k.execute(&mut []);
    }
    assert_eq!(Kernel::default().flops_per_task(), 0);
}
