//! `CUDA_VISIBLE_DEVICES` in the forms users, Slurm and container runtimes
//! write, read as CUDA reads them.

use ferry_launcher::GpuInfo;
use ferry_launcher::cuda_visible::apply;

/// Four GPUs in PCI order, on NUMA nodes 0, 0, 1, 1, with UUIDs.
fn node() -> Vec<GpuInfo> {
    let uuids = [
        "GPU-8e3f0c1a-1111-2222-3333-444455556666",
        "GPU-8e3f9d2b-aaaa-bbbb-cccc-ddddeeeeffff",
        "GPU-17c0ffee-0000-1111-2222-333344445555",
        "GPU-42a1b2c3-9999-8888-7777-666655554444",
    ];
    uuids
        .iter()
        .enumerate()
        .map(|(i, u)| GpuInfo {
            numa_node: Some(i as u32 / 2),
            uuid: Some(u.to_string()),
            pci_bus_id: Some(format!("0000:{:02x}:00.0", 0x41 + i)),
            ..GpuInfo::new(i as u32, format!("H200 #{i}"))
        })
        .collect()
}

/// (ordinal, physical name, visible id) of what is visible.
fn seen(value: Option<&str>) -> Vec<(u32, String, String)> {
    apply(&node(), value)
        .gpus
        .into_iter()
        .map(|g| (g.ordinal, g.name, g.visible_id))
        .collect()
}

fn names(value: Option<&str>) -> Vec<String> {
    seen(value).into_iter().map(|(_, n, _)| n).collect()
}

#[test]
fn unset_means_every_gpu() {
    let all = seen(None);
    assert_eq!(all.len(), 4);
    assert_eq!(all[3], (3, "H200 #3".into(), "3".into()));
}

#[test]
fn empty_and_nodevfiles_mean_none() {
    for v in ["", "  ", "NoDevFiles"] {
        let visible = apply(&node(), Some(v));
        assert!(visible.gpus.is_empty(), "{v:?}");
        assert_eq!(visible.ignored, None, "{v:?}");
    }
}

#[test]
fn indices_renumber_from_zero_in_the_order_given() {
    assert_eq!(
        seen(Some("2,0")),
        vec![
            (0, "H200 #2".into(), "2".into()),
            (1, "H200 #0".into(), "0".into())
        ]
    );
    // Spaces around entries are tolerated.
    assert_eq!(names(Some(" 3 , 1")), vec!["H200 #3", "H200 #1"]);
    // The NUMA node follows the physical GPU.
    let v = apply(&node(), Some("3"));
    assert_eq!(v.gpus[0].numa_node, Some(1));
}

#[test]
fn uuids_and_unique_prefixes() {
    assert_eq!(
        names(Some("GPU-42a1b2c3-9999-8888-7777-666655554444,GPU-17c0")),
        vec!["H200 #3", "H200 #2"]
    );
    // The hex digits' case does not matter.
    assert_eq!(names(Some("GPU-17C0FFEE")), vec!["H200 #2"]);
    // An ambiguous prefix names no device and ends the list.
    let v = apply(&node(), Some("1,GPU-8e3f,2"));
    assert_eq!(v.gpus.len(), 1);
    assert!(v.ignored.as_deref().unwrap().contains("GPU-8e3f"), "{v:?}");
    // Mixed indices and UUIDs.
    assert_eq!(names(Some("0,GPU-42a1")), vec!["H200 #0", "H200 #3"]);
}

#[test]
fn mig_instances() {
    // Old form names its GPU: the NUMA node is known.
    let v = apply(
        &node(),
        Some(
            "MIG-GPU-17c0ffee-0000-1111-2222-333344445555/1/0,MIG-GPU-17c0ffee-0000-1111-2222-333344445555/2/0",
        ),
    );
    assert_eq!(v.gpus.len(), 2, "{v:?}");
    assert_eq!(v.gpus[0].name, "H200 #2 MIG 1/0");
    assert_eq!(v.gpus[1].ordinal, 1);
    assert!(v.gpus.iter().all(|g| g.numa_node == Some(1)));
    assert!(v.gpus[0].uuid.as_deref().unwrap().starts_with("MIG-GPU-"));
    // New form: a device, parent unknown.
    let v = apply(&node(), Some("MIG-a1b2c3d4-e5f6-5a7b-8c9d-0e1f2a3b4c5d"));
    assert_eq!(v.gpus.len(), 1);
    assert_eq!(v.gpus[0].numa_node, None);
    assert_eq!(
        v.gpus[0].visible_id,
        "MIG-a1b2c3d4-e5f6-5a7b-8c9d-0e1f2a3b4c5d"
    );
    // A malformed instance path names no device.
    assert!(apply(&node(), Some("MIG-GPU-17c0/x/0")).gpus.is_empty());
}

#[test]
fn the_list_ends_at_the_first_entry_naming_no_device() {
    for (value, kept, bad) in [
        ("0,-1,2", 1, "\"-1\""),
        ("-1", 0, "\"-1\""),
        ("1,7", 1, "\"7\""),
        ("1,1,2", 1, "already listed"),
        ("0,GPU-8e3f0c1a,3", 1, "already listed"),
        ("2,banana,3", 1, "\"banana\""),
        ("3,", 1, "\"\""),
    ] {
        let v = apply(&node(), Some(value));
        assert_eq!(v.gpus.len(), kept, "{value}: {v:?}");
        let why = v.ignored.unwrap_or_default();
        assert!(why.contains(bad), "{value}: {why}");
        assert!(why.contains("as CUDA does"), "{why}");
    }
}

#[test]
fn without_gpus_nothing_is_visible() {
    for v in [None, Some("0"), Some("GPU-8e3f"), Some("MIG-a1b2c3d4-e5f6")] {
        assert!(apply(&[], v).gpus.is_empty(), "{v:?}");
    }
}
