//! RFC 9162 (Certificate Transparency 2.0) Merkle trees, section 2.1: the tree hash,
//! inclusion proofs and consistency proofs over a hearing's manifest lines.
//!
//! leaf = SHA-256(0x00 || line), node = SHA-256(0x01 || left || right). Written out
//! here (about 150 lines, checked against the published CT test vectors) so that an
//! auditor reads the whole of it; no GStreamer, no HTTP.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Largest power of two strictly smaller than `n` (n >= 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH(D[n]) over leaf hashes.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// PATH(m, D[n]): the inclusion proof of leaf `m`.
pub fn inclusion_proof(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 || m >= n {
        return Vec::new();
    }
    let k = split(n);
    let mut p;
    if m < k {
        p = inclusion_proof(m, &leaves[..k]);
        p.push(root(&leaves[k..]));
    } else {
        p = inclusion_proof(m - k, &leaves[k..]);
        p.push(root(&leaves[..k]));
    }
    p
}

/// RFC 9162 2.1.3.2: does `proof` show leaf `m` (hash `leaf`) in a tree of `n` with `root`?
pub fn verify_inclusion(m: usize, n: usize, leaf: &Hash, proof: &[Hash], root_hash: &Hash) -> bool {
    if m >= n {
        return false;
    }
    let (mut f_n, mut s_n) = (m, n - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    s_n == 0 && r == *root_hash
}

/// PROOF(m, D[n]): the consistency proof between the first `m` leaves and all of them.
pub fn consistency_proof(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    fn sub(m: usize, d: &[Hash], complete: bool) -> Vec<Hash> {
        let n = d.len();
        if m == n {
            return if complete { Vec::new() } else { vec![root(d)] };
        }
        let k = split(n);
        if m <= k {
            let mut p = sub(m, &d[..k], complete);
            p.push(root(&d[k..]));
            p
        } else {
            let mut p = sub(m - k, &d[k..], false);
            p.push(root(&d[..k]));
            p
        }
    }
    if m == 0 || m > leaves.len() {
        return Vec::new();
    }
    sub(m, leaves, true)
}

/// RFC 9162 2.1.4.2: does `proof` show that the tree of `m` leaves with `first` is a
/// prefix of the tree of `n` leaves with `second` (nothing rewritten or cut)?
pub fn verify_consistency(m: usize, n: usize, first: &Hash, second: &Hash, proof: &[Hash]) -> bool {
    if m > n || m == 0 {
        return false;
    }
    if m == n {
        return proof.is_empty() && first == second;
    }
    let mut path: Vec<Hash> = proof.to_vec();
    if m.is_power_of_two() {
        path.insert(0, *first);
    }
    let Some((head, rest)) = path.split_first() else {
        return false;
    };
    let (mut f_n, mut s_n) = (m - 1, n - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut fr, mut sr) = (*head, *head);
    for c in rest {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    fr == *first && sr == *second && s_n == 0
}

/// The peaks of a growing tree: the roots of its complete subtrees, largest first. The
/// root of all leaves so far is their fold from the right, so a checkpoint's root costs
/// O(log n) instead of rehashing the whole manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    /// (height, hash) of each complete subtree, left to right.
    peaks: Vec<(u32, Hash)>,
    size: u64,
}

impl Frontier {
    pub fn push(&mut self, leaf: Hash) {
        let (mut height, mut node) = (0u32, leaf);
        while let Some(&(h, left)) = self.peaks.last() {
            if h != height {
                break;
            }
            self.peaks.pop();
            node = node_hash(&left, &node);
            height += 1;
        }
        self.peaks.push((height, node));
        self.size += 1;
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// MTH of every leaf pushed so far (RFC 9162 2.1.1).
    pub fn root(&self) -> Hash {
        let mut it = self.peaks.iter().rev();
        let Some(&(_, mut r)) = it.next() else {
            return Sha256::digest([]).into();
        };
        for (_, left) in it {
            r = node_hash(left, &r);
        }
        r
    }
}

/// Every level of a tree, built once (O(n)) so that each subtree hash, inclusion proof
/// and consistency proof after it costs O(log n): an export of a long hearing carries
/// a proof for each of its ~150,000 lines.
pub struct Levels {
    /// `levels[h][i]` is the hash of the complete subtree of leaves
    /// `[i << h, (i + 1) << h)`.
    levels: Vec<Vec<Hash>>,
}

impl Levels {
    pub fn new(leaves: Vec<Hash>) -> Levels {
        let mut levels = vec![leaves];
        while let Some(last) = levels.last().filter(|l| l.len() > 1) {
            let next = last
                .chunks_exact(2)
                .map(|p| node_hash(&p[0], &p[1]))
                .collect();
            levels.push(next);
        }
        Levels { levels }
    }

    pub fn len(&self) -> usize {
        self.levels[0].len()
    }

    pub fn leaves(&self) -> &[Hash] {
        &self.levels[0]
    }

    pub fn is_empty(&self) -> bool {
        self.levels[0].is_empty()
    }

    /// MTH of leaves `[lo, hi)`, where `lo` is a multiple of the largest power of two
    /// not above `hi - lo` (true of every subtree the RFC's recursion visits).
    fn subtree(&self, lo: usize, hi: usize) -> Hash {
        let n = hi - lo;
        if n == 0 {
            return Sha256::digest([]).into();
        }
        if n.is_power_of_two() {
            let h = n.trailing_zeros() as usize;
            if lo.is_multiple_of(n)
                && let Some(x) = self.levels.get(h).and_then(|l| l.get(lo >> h))
            {
                return *x;
            }
        }
        if n == 1 {
            return self.levels[0][lo];
        }
        let k = split(n);
        node_hash(&self.subtree(lo, lo + k), &self.subtree(lo + k, hi))
    }

    /// MTH of the first `n` leaves.
    pub fn root(&self, n: usize) -> Hash {
        self.subtree(0, n.min(self.len()))
    }

    /// PATH(m, D[n]) over the first `n` leaves.
    pub fn inclusion_proof(&self, m: usize, n: usize) -> Vec<Hash> {
        let n = n.min(self.len());
        let mut proof = Vec::new();
        if n <= 1 || m >= n {
            return proof;
        }
        // Walk down from the root, collecting the siblings, then reverse (leaf first).
        let (mut lo, mut hi) = (0usize, n);
        while hi - lo > 1 {
            let k = split(hi - lo);
            if m < lo + k {
                proof.push(self.subtree(lo + k, hi));
                hi = lo + k;
            } else {
                proof.push(self.subtree(lo, lo + k));
                lo += k;
            }
        }
        proof.reverse();
        proof
    }

    /// PROOF(m, D[n]) between the first `m` and the first `n` leaves.
    pub fn consistency_proof(&self, m: usize, n: usize) -> Vec<Hash> {
        let n = n.min(self.len());
        if m == 0 || m > n {
            return Vec::new();
        }
        let mut proof = Vec::new();
        let (mut lo, mut hi, mut mm, mut complete) = (0usize, n, m, true);
        loop {
            let len = hi - lo;
            if mm == len {
                if !complete {
                    proof.push(self.subtree(lo, hi));
                }
                break;
            }
            let k = split(len);
            if mm <= k {
                proof.push(self.subtree(lo + k, hi));
                hi = lo + k;
            } else {
                proof.push(self.subtree(lo, lo + k));
                lo += k;
                mm -= k;
                complete = false;
            }
        }
        proof.reverse();
        proof
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The leaves of Certificate Transparency's reference Merkle tree tests.
    fn ct_leaves() -> Vec<Hash> {
        let inputs: [&[u8]; 8] = [
            b"",
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ];
        inputs.iter().map(|d| leaf_hash(d)).collect()
    }

    #[test]
    fn roots_match_the_ct_test_vectors() {
        let want = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let leaves = ct_leaves();
        for (i, w) in want.iter().enumerate() {
            assert_eq!(hex::encode(root(&leaves[..=i])), *w, "tree of {}", i + 1);
        }
        assert_eq!(
            hex::encode(root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn every_inclusion_and_consistency_proof_verifies_and_tampering_fails() {
        let leaves: Vec<Hash> = (0..37u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for n in 1..=leaves.len() {
            let d = &leaves[..n];
            let r = root(d);
            for m in 0..n {
                let p = inclusion_proof(m, d);
                assert!(
                    verify_inclusion(m, n, &d[m], &p, &r),
                    "inclusion {m} of {n}"
                );
                assert!(!verify_inclusion(m, n, &leaf_hash(b"other"), &p, &r));
                if n > 1 {
                    assert!(
                        !verify_inclusion((m + 1) % n, n, &d[m], &p, &r),
                        "wrong index {m} of {n}"
                    );
                }
            }
            for m in 1..=n {
                let p = consistency_proof(m, d);
                let first = root(&d[..m]);
                assert!(
                    verify_consistency(m, n, &first, &r, &p),
                    "consistency {m} -> {n}"
                );
                if m < n {
                    // A rewritten prefix is caught.
                    let mut forged = d.to_vec();
                    forged[m - 1] = leaf_hash(b"forged");
                    assert!(!verify_consistency(m, n, &root(&forged[..m]), &r, &p));
                    assert!(!verify_consistency(m, n, &first, &root(&forged), &p));
                }
            }
        }
    }

    #[test]
    fn frontier_and_levels_agree_with_the_recursive_definitions() {
        let leaves: Vec<Hash> = (0..70u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut f = Frontier::default();
        assert_eq!(f.root(), root(&[]));
        let levels = Levels::new(leaves.clone());
        for n in 1..=leaves.len() {
            f.push(leaves[n - 1]);
            let d = &leaves[..n];
            assert_eq!(f.root(), root(d), "frontier root of {n}");
            assert_eq!(levels.root(n), root(d), "levels root of {n}");
            for m in 0..n {
                assert_eq!(
                    levels.inclusion_proof(m, n),
                    inclusion_proof(m, d),
                    "inclusion {m} of {n}"
                );
            }
            for m in 1..=n {
                assert_eq!(
                    levels.consistency_proof(m, n),
                    consistency_proof(m, d),
                    "consistency {m} to {n}"
                );
            }
        }
    }
}
