//! "1. Object store" and "1.1. Pattern: pass an object as a top-level
//! argument" of the Ray Core advanced tutorial (seed 004).
//!
//! A 1 GiB matrix goes into the object store and comes back equal but not the
//! same memory; then two 32x32 matrices are put once and passed by ref to ten
//! `compute` tasks.
//!
//! Run it with `cargo run --release --example object_store`.

use ferry::View;

/// A deterministic stand-in for `np.random.rand`: uniform numbers in [0, 1).
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn matrix(&mut self, len: usize) -> Vec<f64> {
        (0..len).map(|_| self.next_f64()).collect()
    }
}

const N: usize = 32;

/// `int(np.matmul(x, y).sum())` for row-major `N`x`N` matrices.
fn matmul_sum(x: &[f64], y: &[f64]) -> i64 {
    let mut total = 0.0;
    for i in 0..N {
        for j in 0..N {
            let mut c = 0.0;
            for k in 0..N {
                c += x[i * N + k] * y[k * N + j];
            }
            total += c;
        }
    }
    total as i64
}

#[ferry::remote]
fn compute(x: View<Vec<f64>>, y: View<Vec<f64>>) -> i64 {
    matmul_sum(x.as_slice(), y.as_slice())
}

#[ferry::main]
fn main(rt: ferry::Runtime) -> ferry::Result<()> {
    // large_matrix = np.random.rand(1024, 1024, 1024 // 8)  # approx. 1 GB
    let start = std::time::Instant::now();
    let mut rng = Rng(42);
    let large_matrix = rng.matrix(1024 * 1024 * 1024 / 8);
    let size = std::mem::size_of_val(large_matrix.as_slice());
    println!(
        "large_matrix has: {:.2} GB (made in {:.2} s)",
        size as f64 / (1u64 << 30) as f64,
        start.elapsed().as_secs_f64()
    );
    let start = std::time::Instant::now();

    // obj_ref = ray.put(large_matrix)
    let obj_ref = rt.put(&large_matrix)?;
    println!("put: {obj_ref:?} in {:.2} s", start.elapsed().as_secs_f64());
    let start = std::time::Instant::now();

    // large_mat_from_object_store = ray.get(obj_ref)
    let from_store = rt.get(&obj_ref)?;

    // np.array_equal(large_mat_from_object_store, large_matrix) -> True
    assert!(from_store.as_slice() == large_matrix.as_slice());
    // large_mat_from_object_store is large_matrix -> False
    let same = std::ptr::eq(from_store.as_slice().as_ptr(), large_matrix.as_ptr());
    assert!(!same);
    println!(
        "get + array_equal: true ({:.2} s), is: {same}",
        start.elapsed().as_secs_f64()
    );
    drop(from_store);
    drop(obj_ref);
    drop(large_matrix);

    // 1.1: put the matrices once, pass the refs to every task.
    let mat1 = rng.matrix(N * N);
    let mat2 = rng.matrix(N * N);
    let mat1_ref = rt.put(&mat1)?;
    let mat2_ref = rt.put(&mat2)?;
    println!("{mat1_ref:?} {mat2_ref:?}");

    let collection: Vec<_> = (0..10)
        .map(|_| compute::remote(&rt, &mat1_ref, &mat2_ref))
        .collect::<ferry::Result<_>>()?;
    let results: Vec<i64> = rt
        .get_all(&collection)?
        .iter()
        .map(|v| v.to_native())
        .collect();
    let expected = matmul_sum(&mat1, &mat2);
    assert_eq!(results, vec![expected; 10]);
    println!("compute results: {results:?}");
    Ok(())
}
