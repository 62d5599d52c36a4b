"""maxnode: the nodemask length of get_mempolicy, set_mempolicy, mbind and migrate_pages
as get_nodes() and copy_nodes_to_user() read it (kernel-semantics.md section 0; issue
14 item 7). The host kernel answers the same cases in test_host_reference.py."""

import errno

import pytest
from conftest import err, small

from engine import MPOL_BIND, MPOL_DEFAULT, MPOL_F_MEMS_ALLOWED, MPOL_INTERLEAVE, MPOL_MF_MOVE
from engine.nodemask import get_nodes

# ---------------------------------------------------------------- get_nodes() itself

@pytest.mark.parametrize("bits,maxnode,want", [
    ([0, 1, 2], 4, (0, 1, 2)),  # maxnode = nbits + 1, as libnuma passes it
    ([0, 1, 2], 3, (0, 1)),  # the off-by-one: only maxnode - 1 bits are read
    ([0], 1, ()),  # decremented maxnode 0: an empty mask
    ([0, 1], 2, (0,)),
    ([0, 65], 65, (0,)),  # bit 65 is at maxnode - 1 or above: not read
    ([0, 200], 2002, "EINVAL"),  # a set bit at or above MAX_NUMNODES
    ([0, 2010], 2002, "EINVAL"),  # 5.13+: whole 64-bit words above MAX_NUMNODES
    ([0, 2050], 2002, (0,)),  # beyond the last word read: ignored
    ([0], 0, "EINVAL"),  # --maxnode wraps to ULONG_MAX: more than PAGE_SIZE * 8 bits
    ([0], 32769, (0,)),  # exactly PAGE_SIZE * 8 bits
    ([0], 32770, "EINVAL"),
    ([], 0, ()),  # a NULL mask reads as empty whatever maxnode says
])
def test_get_nodes_reads_maxnode_minus_one_bits(bits, maxnode, want):
    """get_nodes(): --maxnode; 0 or NULL -> empty; > PAGE_SIZE*8 -> EINVAL; bits in the
    words above MAX_NUMNODES -> EINVAL; bits beyond the mask ignored."""
    if want == "EINVAL":
        with pytest.raises(OSError) as e:
            get_nodes(bits, maxnode)
        assert e.value.errno == errno.EINVAL
    else:
        assert get_nodes(bits, maxnode) == want


def test_get_nodes_2_6_18_masks_the_last_word_bit_exactly():
    """2.6.18 get_nodes() masked the last word with endmask: a bit at or above
    maxnode - 1 in it was ignored (5.13's rewrite reads the whole word)."""
    assert get_nodes([0, 2010], 2002, whole_words=False) == (0,)
    with pytest.raises(OSError):
        get_nodes([0, 2000], 2002, whole_words=False)


def test_get_nodes_default_reads_every_bit():
    """Without maxnode the whole mask is read (maxnode as long as the mask); a bit at
    MAX_NUMNODES is still EINVAL (get_nodes())."""
    assert get_nodes([0, 3]) == (0, 3)
    with pytest.raises(OSError) as e:
        get_nodes([64])
    assert e.value.errno == errno.EINVAL


def test_get_nodes_page_size_sets_the_largest_mask():
    """maxnode > PAGE_SIZE * BITS_PER_BYTE: a 16 KiB page allows 131072 bits."""
    assert get_nodes([0], 40000, page_size=16384) == (0,)
    with pytest.raises(OSError):
        get_nodes([0], 40000, page_size=4096)


# ---------------------------------------------------------------- the calls

def test_set_mempolicy_maxnode_off_by_one():
    """set_mempolicy(BIND, {0,1}, maxnode=2) reads bit 0 only; maxnode=1 reads nothing:
    an empty BIND mask is EINVAL (mpol_new())."""
    m = small()
    pid = m.spawn("p")
    m.set_mempolicy(pid, MPOL_BIND, [0, 1], maxnode=2)
    assert m.get_mempolicy(pid) == (MPOL_BIND, (0,))
    assert err(lambda: m.set_mempolicy(pid, MPOL_BIND, [0, 1], maxnode=1)) == errno.EINVAL
    assert m.get_mempolicy(pid) == (MPOL_BIND, (0,))  # a failed call changes nothing
    m.set_mempolicy(pid, MPOL_INTERLEAVE, [1, 2, 3, 70], maxnode=4)
    assert m.get_mempolicy(pid) == (MPOL_INTERLEAVE, (1, 2))
    # MPOL_DEFAULT with a mask whose bits lie beyond maxnode: the mask reads empty
    m.set_mempolicy(pid, MPOL_DEFAULT, [3], maxnode=3)
    assert m.get_mempolicy(pid) == (MPOL_DEFAULT, ())


def test_set_mempolicy_maxnode_zero_with_a_mask_is_EINVAL():
    """maxnode 0 with a non-NULL mask: --maxnode wraps, more than PAGE_SIZE*8 bits."""
    m = small()
    pid = m.spawn("p")
    assert err(lambda: m.set_mempolicy(pid, MPOL_BIND, [0], maxnode=0)) == errno.EINVAL
    m.set_mempolicy(pid, MPOL_DEFAULT, (), maxnode=0)  # NULL mask: fine


def test_mbind_and_migrate_pages_take_maxnode():
    """mbind(2) and migrate_pages(2) read their masks with get_nodes(): maxnode - 1 bits;
    migrate_pages reads old and new with the same maxnode, an empty new set is EINVAL
    (kernel_migrate_pages())."""
    m = small()
    pid = m.spawn("p")
    a = m.mmap(pid, 8 * m.page_size)
    m.touch(pid, a, 8 * m.page_size, node=0)
    # only bit 0 of {0, 2} is read: nothing is misplaced
    m.mbind(pid, a, 8 * m.page_size, MPOL_BIND, [0, 2], MPOL_MF_MOVE, maxnode=2)
    assert m.get_mempolicy(pid, a, 2) == (MPOL_BIND, (0,))
    assert err(lambda: m.mbind(pid, a, m.page_size, MPOL_BIND, [0, 200], maxnode=300)) \
        == errno.EINVAL
    # migrate_pages reads both masks with the same maxnode: new = {1} (bit 3 ignored)
    assert m.migrate_pages(pid, [0], [1, 3], maxnode=3) == 0
    assert set(m.move_pages(pid, [a + i * m.page_size for i in range(8)])) == {1}
    assert err(lambda: m.migrate_pages(pid, [1], [2], maxnode=1)) == errno.EINVAL  # new empty
    m.check()


def test_get_mempolicy_maxnode_below_nr_node_ids_is_EINVAL():
    """kernel_get_mempolicy(): nmask && maxnode < nr_node_ids -> EINVAL (2.6.18:
    < MAX_NUMNODES); copy_nodes_to_user(): more than a page -> EINVAL."""
    m = small()  # 4 nodes: nr_node_ids 4
    pid = m.spawn("p")
    assert err(lambda: m.get_mempolicy(pid, maxnode=3)) == errno.EINVAL
    assert m.get_mempolicy(pid, maxnode=4) == (MPOL_DEFAULT, ())
    assert m.get_mempolicy(pid, flags=MPOL_F_MEMS_ALLOWED, maxnode=4)[1] == (0, 1, 2, 3)
    assert err(lambda: m.get_mempolicy(pid, maxnode=32770)) == errno.EINVAL
    assert m.get_mempolicy(pid, maxnode=32769) == (MPOL_DEFAULT, ())
    m.era = "2.6.18"
    assert err(lambda: m.get_mempolicy(pid, maxnode=4)) == errno.EINVAL
    assert m.get_mempolicy(pid, maxnode=64) == (MPOL_DEFAULT, ())


def test_maxnode_must_be_an_integer():
    """maxnode is an unsigned long: a float is a TypeError, never coerced."""
    m = small()
    pid = m.spawn("p")
    with pytest.raises(TypeError):
        m.set_mempolicy(pid, MPOL_BIND, [0], maxnode=2.0)
