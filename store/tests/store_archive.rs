//! rkyv round trips through the arena.

mod common;

use common::arena;
use ferry_store::{
    StoreError, access, archived_len, as_native_slice, deserialize, put, put_pod_slice_with,
};

const MIB: usize = 1 << 20;

#[derive(Debug, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Inner {
    id: u32,
    tags: Vec<String>,
}

#[derive(Debug, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Outer {
    name: String,
    weights: Vec<f64>,
    inner: Vec<Inner>,
    maybe: Option<Box<Inner>>,
}

fn sample() -> Outer {
    Outer {
        name: "task-7".into(),
        weights: vec![0.5, -1.25, 3.0],
        inner: vec![
            Inner {
                id: 1,
                tags: vec!["a".into(), "bb".into()],
            },
            Inner {
                id: 2,
                tags: vec![],
            },
        ],
        maybe: Some(Box::new(Inner {
            id: 3,
            tags: vec!["a string longer than the inline limit".into()],
        })),
    }
}

#[test]
fn roundtrip_u64() {
    let a = arena("u64", MIB);
    let b = put(&a, &0xDEAD_BEEF_u64).unwrap();
    assert_eq!(b.len(), 8);
    assert_eq!(*access::<u64>(&b).unwrap(), 0xDEAD_BEEF);
    assert_eq!(
        deserialize::<u64>(access::<u64>(&b).unwrap()).unwrap(),
        0xDEAD_BEEF
    );
}

#[test]
fn roundtrip_string() {
    let a = arena("string", MIB);
    for s in ["", "short", &"long ".repeat(100)] {
        let owned = s.to_string();
        let b = put(&a, &owned).unwrap();
        assert_eq!(b.len(), archived_len(&owned).unwrap());
        let archived = access::<String>(&b).unwrap();
        assert_eq!(archived.as_str(), s);
        assert_eq!(deserialize::<String>(archived).unwrap(), owned);
    }
}

#[test]
fn roundtrip_vec_f64_zero_copy_view() {
    let a = arena("vecf64", 64 * MIB);
    let v: Vec<f64> = (0..100_000).map(|i| i as f64 * 0.25).collect();
    let b = put(&a, &v).unwrap();
    let archived = access::<Vec<f64>>(&b).unwrap();
    let native = as_native_slice::<f64>(archived);
    assert_eq!(native, v.as_slice());
    // The view points into the block: no copy was made.
    assert_eq!(native.as_ptr() as usize, b.as_slice().as_ptr() as usize);
    assert_eq!(deserialize::<Vec<f64>>(archived).unwrap(), v);
}

#[test]
fn roundtrip_nested_struct() {
    let a = arena("nested", MIB);
    let value = sample();
    let b = put(&a, &value).unwrap();
    assert_eq!(
        b.as_slice(),
        rkyv::to_bytes::<rkyv::rancor::Error>(&value)
            .unwrap()
            .as_slice()
    );
    let archived = access::<Outer>(&b).unwrap();
    assert_eq!(archived.name, "task-7");
    assert_eq!(archived.inner[0].tags[1], "bb");
    assert_eq!(deserialize::<Outer>(archived).unwrap(), value);
}

#[test]
fn wrong_type_is_corrupt() {
    let a = arena("wrongtype", MIB);
    let b = put(&a, &7u32).unwrap();
    assert!(matches!(access::<String>(&b), Err(StoreError::Corrupt(_))));
    assert!(matches!(access::<u64>(&b), Err(StoreError::Corrupt(_))));
}

#[test]
fn corrupted_vec_is_rejected() {
    let a = arena("corrupt", MIB);
    let v: Vec<u64> = (0..16).collect();
    let good = put(&a, &v).unwrap();
    let n = good.len();
    // Layout (rkyv's pointer_width_64, as the workspace builds it): 16
    // elements, then the root: i64 relative pointer, u64 length.
    assert_eq!(n, 16 * 8 + 16);

    let corrupt = |patch: &dyn Fn(&mut [u8])| {
        let mut m = a.alloc(n).unwrap();
        m.as_mut_slice().copy_from_slice(good.as_slice());
        patch(m.as_mut_slice());
        m.freeze()
    };

    // Length far past the buffer.
    let b = corrupt(&|s| s[n - 8..].copy_from_slice(&u64::MAX.to_le_bytes()));
    let e = access::<Vec<u64>>(&b).unwrap_err();
    assert!(matches!(e, StoreError::Corrupt(_)), "{e:?}");
    assert!(e.to_string().starts_with("stored object is corrupt"));

    // Length just one element too long.
    let b = corrupt(&|s| s[n - 8..].copy_from_slice(&17u64.to_le_bytes()));
    assert!(matches!(
        access::<Vec<u64>>(&b),
        Err(StoreError::Corrupt(_))
    ));

    // Relative pointer before the start of the buffer.
    let b = corrupt(&|s| s[n - 16..n - 8].copy_from_slice(&(-10_000i64).to_le_bytes()));
    assert!(matches!(
        access::<Vec<u64>>(&b),
        Err(StoreError::Corrupt(_))
    ));

    // Relative pointer forward, out of bounds.
    let b = corrupt(&|s| s[n - 16..n - 8].copy_from_slice(&1000i64.to_le_bytes()));
    assert!(matches!(
        access::<Vec<u64>>(&b),
        Err(StoreError::Corrupt(_))
    ));

    // Misaligned element pointer.
    let b = corrupt(&|s| {
        s[n - 16..n - 8].copy_from_slice(&(-(n as i64 - 16) + 1).to_le_bytes());
        s[n - 8..].copy_from_slice(&1u64.to_le_bytes());
    });
    assert!(matches!(
        access::<Vec<u64>>(&b),
        Err(StoreError::Corrupt(_))
    ));

    // Truncated buffer.
    assert!(matches!(
        access::<Vec<u64>>(&good.as_slice()[..4]),
        Err(StoreError::Corrupt(_))
    ));

    // Invalid UTF-8 in a String.
    let s = put(&a, &String::from("a string longer than inline storage")).unwrap();
    let mut m = a.alloc(s.len()).unwrap();
    m.as_mut_slice().copy_from_slice(s.as_slice());
    m.as_mut_slice()[0] = 0xFF;
    assert!(matches!(
        access::<String>(&m.freeze()),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn pod_slice_in_place_matches_rkyv_layout() {
    macro_rules! check {
        ($p:ty, $values:expr) => {{
            let values: Vec<$p> = $values;
            let a = arena("pod", MIB);
            let b = put_pod_slice_with::<$p>(&a, values.len(), |out| out.copy_from_slice(&values))
                .unwrap();
            let expected = rkyv::to_bytes::<rkyv::rancor::Error>(&values).unwrap();
            assert_eq!(b.as_slice(), expected.as_slice(), "{values:?}");
            let archived = access::<Vec<$p>>(&b).unwrap();
            assert_eq!(as_native_slice::<$p>(archived), values.as_slice());
            assert_eq!(put(&a, &values).unwrap().as_slice(), b.as_slice());
        }};
    }
    check!(u8, vec![]);
    check!(u8, vec![1, 2, 3]);
    check!(i8, vec![-1, 2, -3, 4, 5]);
    check!(u16, vec![1, 65535, 3]);
    check!(i16, vec![-7]);
    check!(u32, vec![u32::MAX, 0, 7]);
    check!(i32, vec![i32::MIN; 9]);
    check!(u64, vec![u64::MAX, 1]);
    check!(i64, vec![]);
    check!(i64, vec![-1, i64::MIN, i64::MAX]);
    check!(f32, vec![1.5, -0.0, f32::INFINITY]);
    check!(f64, (0..1000).map(|i| i as f64 / 3.0).collect());
}

#[test]
fn pod_slice_large_is_page_aligned_and_exact() {
    let a = arena("podlarge", 64 * MIB);
    let n = 1 << 20;
    let b = put_pod_slice_with::<f64>(&a, n, |xs| {
        for (i, x) in xs.iter_mut().enumerate() {
            *x = i as f64;
        }
    })
    .unwrap();
    assert_eq!(b.offset() % 4096, 0);
    assert_eq!(b.len(), n * 8 + 16);
    let v = as_native_slice::<f64>(access::<Vec<f64>>(&b).unwrap());
    assert_eq!(v.len(), n);
    assert_eq!(v[n - 1], (n - 1) as f64);
}

#[test]
fn put_reports_full() {
    let a = arena("putfull", MIB);
    let v = vec![0u8; 2 * MIB];
    assert!(matches!(put(&a, &v), Err(StoreError::Full { .. })));
    assert!(matches!(
        put_pod_slice_with::<u8>(&a, 2 * MIB, |_| unreachable!()),
        Err(StoreError::Full { .. })
    ));
    assert_eq!(a.used(), 0);
}
