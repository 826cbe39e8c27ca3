from __future__ import annotations

import contextlib
import hashlib
import time
from dataclasses import replace

import pytest
from tronpy.exceptions import BadSignature
from tronpy.keys import PrivateKey, Signature

from energy_async.sandbox.base58 import decode_address, encode_address
from energy_async.sandbox.chain import (
    BLOCK_TIME,
    DEFAULT_LOCK_PERIOD,
    SOLID_DEPTH,
    TX_EXPIRATION_MS,
    Chain,
    ChainClock,
)

TRX = 1_000_000


@pytest.fixture
def chain() -> Chain:
    return Chain(seed=7, speed=0)  # frozen: only advance() moves it


def funded(chain: Chain, stake_trx: int = 100_000) -> tuple[str, str]:
    """A provider with energy stake and an activated customer."""
    return chain.new_account(energy_stake_sun=stake_trx * TRX), chain.new_account()


# -- clock and blocks ---------------------------------------------------------------------------


def test_clock_starts_at_real_time_and_jumps_on_advance() -> None:
    clock = ChainClock()
    assert abs(clock.now() - time.time()) < 1
    before = clock.now()
    clock.advance(3600)
    assert clock.now() - before >= 3600
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_frozen_clock_moves_only_on_advance() -> None:
    clock = ChainClock(speed=0)
    start = clock.now()
    time.sleep(0.002)
    assert clock.now() == start
    clock.advance(1.5)
    assert clock.now() == start + 1.5


def test_fast_clock_runs_faster_than_real_time() -> None:
    clock = ChainClock(speed=1000)
    start, real = clock.now(), time.monotonic()
    while time.monotonic() - real < 0.01:
        pass
    assert clock.now() - start >= 9


def test_head_follows_the_clock_and_solid_head_trails_by_18() -> None:
    chain = Chain(start_block=500, speed=0)
    assert chain.head() == 500
    head = chain.head()
    chain.clock.advance(BLOCK_TIME * 10)
    assert chain.head() == head + 10
    assert chain.solid_head() == chain.head() - SOLID_DEPTH
    chain.advance_blocks(2)
    assert chain.head() == head + 12


def test_block_ids_carry_the_number_and_timestamps_are_3s_apart(chain: Chain) -> None:
    assert chain.block_id(1234)[:16] == (1234).to_bytes(8, "big").hex()
    assert len(chain.block_id(1234)) == 64
    assert chain.block_id(5) != chain.block_id(6)
    assert chain.block_timestamp_ms(11) - chain.block_timestamp_ms(10) == 3000
    head = chain.head()
    now_ms = chain.clock.now() * 1000
    assert chain.block_timestamp_ms(head) <= now_ms < chain.block_timestamp_ms(head + 1)


# -- addresses and accounts ---------------------------------------------------------------------


def test_new_addresses_are_valid_deterministic_and_not_activated() -> None:
    first, second = Chain(seed=1), Chain(seed=1)
    addresses = [first.new_address() for _ in range(5)]
    assert addresses == [second.new_address() for _ in range(5)]
    assert addresses != [Chain(seed=2).new_address() for _ in range(5)]
    for address in addresses:
        assert address.startswith("T") and len(address) == 34
        assert Chain.is_valid_address(address)
        assert not first.is_activated(address)
        assert first.energy_limit(address) == 0
        assert first.account(address) is None


def test_address_validation_matches_base58check_rules() -> None:
    good = Chain().new_address()
    raw = decode_address(good)
    assert raw is not None and raw[0] == 0x41 and len(raw) == 21
    assert not Chain.is_valid_address(good[:-1] + ("1" if good[-1] != "1" else "2"))  # checksum
    assert not Chain.is_valid_address(good[:-1] + "0")  # not in the alphabet
    assert not Chain.is_valid_address("")
    assert not Chain.is_valid_address(encode_address(b"\x42" + raw[1:]))  # wrong prefix
    assert not Chain.is_valid_address(encode_address(raw + b"\x00"))  # 22 bytes
    # A well-known mainnet address (USDT contract) decodes.
    assert Chain.is_valid_address("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t")


def test_activation(chain: Chain) -> None:
    address = chain.new_address()
    chain.activate(address)
    assert chain.is_activated(address)
    chain.activate(address)  # idempotent
    with pytest.raises(ValueError):
        chain.activate("Tnot-an-address")


def test_own_stake_adds_whole_trx_to_total_energy_weight(chain: Chain) -> None:
    before = chain.total_energy_weight
    chain.new_account(energy_stake_sun=2_500_000)  # 2.5 TRX counts as 2
    assert chain.total_energy_weight == before + 2


def test_energy_limit_formula_matches_real_drift_example() -> None:
    # tron.md 1.5 B and C: one account with a standing 1 TRX delegation.
    chain = Chain(total_energy_weight=16_551_109_184, speed=0)
    provider, target = funded(chain, 10)
    chain.delegate(provider, target, 1 * TRX)
    chain.advance_blocks(1)
    assert chain.energy_limit(target) == 10
    chain.set_total_energy_weight(18_971_780_957)
    assert chain.energy_limit(target) == 9
    assert chain.total_energy_weight == 18_971_780_957
    assert chain.total_energy_limit == 180_000_000_000


def test_energy_limit_for_a_typical_rental(chain: Chain) -> None:
    # tron.md 1.2: 6,851 TRX at TEW 18,971,780,957 buys 65,000 energy.
    provider, target = funded(chain)
    chain.set_total_energy_weight(18_971_780_957)
    chain.delegate(provider, target, 6_851 * TRX)
    chain.advance_blocks(1)
    assert chain.energy_limit(target) == 65_000
    assert chain.delegated_sun(provider, target) == 6_851 * TRX


def test_delegation_moves_stake_and_leaves_total_weight_alone(chain: Chain) -> None:
    provider, target = funded(chain, 10_000)
    weight = chain.total_energy_weight
    provider_energy = chain.energy_limit(provider)
    chain.delegate(provider, target, 4_000 * TRX)
    chain.advance_blocks(1)
    assert chain.total_energy_weight == weight
    owner, receiver = chain.account(provider), chain.account(target)
    assert owner is not None and receiver is not None
    assert owner.energy.frozen == 6_000 * TRX and owner.energy.delegated == 4_000 * TRX
    assert receiver.energy.acquired == 4_000 * TRX
    assert chain.energy_limit(provider) < provider_energy
    assert chain.delegation_index(provider) == ([], [target])
    assert chain.delegation_index(target) == ([provider], [])


# -- transaction life cycle ---------------------------------------------------------------------


def test_pending_then_included_then_solid(chain: Chain) -> None:
    provider, target = funded(chain)
    head = chain.head()
    txid = chain.delegate(provider, target, 1_000 * TRX)
    assert len(txid) == 64 and txid == txid.lower()
    assert chain.tx_state(txid) == "pending"
    assert chain.tx_block(txid) is None
    assert chain.energy_limit(target) == 0  # state changes only when the block is applied
    chain.advance_blocks(1)
    assert chain.tx_state(txid) == "included"
    assert chain.tx_block(txid) == head + 1
    assert chain.energy_limit(target) > 0
    chain.advance_blocks(SOLID_DEPTH - 1)
    assert chain.tx_state(txid) == "included"
    chain.advance_blocks(1)
    assert chain.tx_state(txid) == "solid"
    assert chain.solid_head() == chain.tx_block(txid)


def test_txid_is_sha256_of_protobuf_raw_data(chain: Chain) -> None:
    provider, target = funded(chain)
    txid = chain.delegate(provider, target, 10 * TRX, lock=True, lock_period=100)
    tx = chain.transaction(txid)
    assert tx is not None
    raw = tx.raw_data()
    assert hashlib.sha256(raw).hexdigest() == txid
    assert b"type.googleapis.com/protocol.DelegateResourceContract" in raw
    owner_bytes = decode_address(provider)
    assert owner_bytes is not None and owner_bytes in raw
    assert tx.expiration_ms - tx.timestamp_ms == TX_EXPIRATION_MS
    assert (tx.lock, tx.lock_period, tx.balance, tx.resource) == (True, 100, 10 * TRX, "ENERGY")


def recovered(signature: bytes, txid: str) -> str:
    """Who signed: the address of the key recovered from ``signature`` over ``txid``."""
    public = Signature(signature).recover_public_key_from_msg_hash(bytes.fromhex(txid))
    address: str = public.to_base58check_address()
    return address


def test_every_transaction_is_signed_by_its_owner(chain: Chain) -> None:
    provider, target = funded(chain)
    delegation = chain.transaction(chain.delegate(provider, target, 10 * TRX))
    chain.advance_blocks(1)
    reclaim = chain.transaction(chain.undelegate(provider, target, 4 * TRX))
    for tx in (delegation, reclaim):
        assert tx is not None
        assert len(tx.signature) == 65 and tx.signature[64] in (27, 28)
        assert recovered(tx.signature, tx.txid) == provider
        assert recovered(tx.signature, tx.txid) != target
    key = chain.private_key(provider)
    assert key is not None and key.address == provider
    # tronpy, a client no one here wrote, names the same key the same way.
    assert PrivateKey(bytes.fromhex(key.hex())).public_key.to_base58check_address() == provider


def test_a_tampered_transaction_no_longer_verifies(chain: Chain) -> None:
    provider, target = funded(chain)
    tx = chain.transaction(chain.delegate(provider, target, 10 * TRX))
    assert tx is not None
    for tampered in (
        replace(tx, balance=20 * TRX),
        replace(tx, receiver=chain.new_account()),
        replace(tx, lock=True),
    ):
        txid = hashlib.sha256(tampered.raw_data()).hexdigest()
        assert txid != tx.txid
        assert recovered(tx.signature, txid) != provider
    # A signature flipped in one bit recovers to someone else (or to no key at all).
    flipped = bytes([tx.signature[0] ^ 1]) + tx.signature[1:]
    with contextlib.suppress(BadSignature):
        assert recovered(flipped, tx.txid) != provider


def test_keys_are_deterministic_by_seed() -> None:
    first, second = Chain(seed=3, speed=0), Chain(seed=3, speed=0)
    provider, target = funded(first)
    assert funded(second) == (provider, target)
    key, again = first.private_key(provider), second.private_key(provider)
    assert key is not None and again is not None and key.hex() == again.hex()
    assert Chain(seed=4, speed=0).private_key(provider) is None


def test_an_owner_without_a_key_cannot_broadcast(chain: Chain) -> None:
    stranger = encode_address(b"\x41" + b"\x07" * 20)  # valid, but not made by this chain
    chain.activate(stranger)
    _, target = funded(chain)
    with pytest.raises(ValueError, match="Validate signature error"):
        chain.delegate(stranger, target, 1 * TRX)


def test_identical_broadcasts_get_distinct_txids(chain: Chain) -> None:
    provider, target = funded(chain)
    txids = {chain.delegate(provider, target, 1 * TRX) for _ in range(20)}
    assert len(txids) == 20
    chain.advance_blocks(1)
    assert chain.delegated_sun(provider, target) == 20 * TRX


def test_unknown_txid(chain: Chain) -> None:
    assert chain.tx_state("00" * 32) == "unknown"
    assert chain.tx_block("00" * 32) is None
    assert chain.transaction("00" * 32) is None


def test_broadcast_that_never_lands(chain: Chain) -> None:
    provider, target = funded(chain)
    txid = chain.delegate(provider, target, 1_000 * TRX, lands=False)
    assert chain.tx_state(txid) == "pending"
    assert chain.transaction(txid) is not None
    chain.advance_blocks(5)
    assert chain.tx_state(txid) == "pending"
    assert chain.energy_limit(target) == 0
    chain.clock.advance(TX_EXPIRATION_MS / 1000)
    assert chain.tx_state(txid) == "unknown"  # dropped from the pending pool
    assert chain.transaction(txid) is None
    assert chain.delegated_sun(provider, target) == 0
    # It reserved nothing: the whole stake can still be delegated.
    chain.delegate(provider, target, 100_000 * TRX)


def test_inclusion_is_applied_in_block_order_after_a_long_jump(chain: Chain) -> None:
    provider, target = funded(chain)
    first = chain.delegate(provider, target, 5 * TRX)
    chain.clock.advance(86_400)
    second = chain.delegate(provider, target, 7 * TRX)
    assert chain.tx_state(first) == "solid"
    assert chain.tx_state(second) == "pending"
    chain.advance_blocks(1)
    assert chain.tx_block(second) == chain.head()
    assert chain.delegated_sun(provider, target) == 12 * TRX


# -- reclaim and locks --------------------------------------------------------------------------


def test_reclaim_lowers_energy_limit(chain: Chain) -> None:
    provider, target = funded(chain)
    chain.delegate(provider, target, 2_000 * TRX)
    chain.advance_blocks(1)
    full = chain.energy_limit(target)
    txid = chain.undelegate(provider, target, 1_500 * TRX)
    assert chain.tx_state(txid) == "pending"
    assert chain.energy_limit(target) == full
    chain.advance_blocks(1)
    assert chain.tx_state(txid) == "included"
    assert chain.energy_limit(target) == int(500 * 180e9 / chain.total_energy_weight) < full
    assert chain.delegated_sun(provider, target) == 500 * TRX
    owner = chain.account(provider)
    assert owner is not None and owner.energy.frozen == 99_500 * TRX
    chain.undelegate(provider, target, 500 * TRX)
    chain.advance_blocks(1)
    assert chain.energy_limit(target) == 0
    assert chain.delegation_records(provider, target) == []
    assert chain.delegation_index(provider) == ([], [])


def test_reclaim_cannot_exceed_what_is_delegated_even_while_pending(chain: Chain) -> None:
    provider, target = funded(chain)
    chain.delegate(provider, target, 10 * TRX)
    with pytest.raises(ValueError, match="insufficient"):
        chain.undelegate(provider, target, 1 * TRX)  # not in a block yet
    chain.advance_blocks(1)
    chain.undelegate(provider, target, 6 * TRX)
    with pytest.raises(ValueError, match="insufficient"):
        chain.undelegate(provider, target, 6 * TRX)  # only 4 left once the first lands
    with pytest.raises(ValueError):
        chain.undelegate(provider, target, 0)


def test_locked_and_unlocked_records_are_summed(chain: Chain) -> None:
    provider, target = funded(chain)
    chain.delegate(provider, target, 30 * TRX)
    chain.delegate(provider, target, 20 * TRX, lock=True, lock_period=100)
    chain.advance_blocks(1)
    unlocked, locked = chain.delegation_records(provider, target)
    assert (unlocked.locked, unlocked.energy, unlocked.expire_energy_ms) == (False, 30 * TRX, 0)
    assert (locked.locked, locked.energy) == (True, 20 * TRX)
    assert locked.expire_energy_ms == chain.block_timestamp_ms(chain.head() - 1) + 100 * 3000
    assert chain.delegated_sun(provider, target) == 50 * TRX
    assert chain.energy_limit(target) == int(50 * 180e9 / chain.total_energy_weight)
    # Locked stake cannot be reclaimed before it expires.
    with pytest.raises(ValueError, match="insufficient"):
        chain.undelegate(provider, target, 31 * TRX)


def test_expired_lock_can_be_reclaimed_and_merges_into_unlocked(chain: Chain) -> None:
    provider, target = funded(chain)
    chain.delegate(provider, target, 20 * TRX, lock=True, lock_period=10)
    chain.advance_blocks(12)
    (locked,) = chain.delegation_records(provider, target)
    assert locked.locked  # the expired record stays until the pair is touched again
    chain.undelegate(provider, target, 5 * TRX)
    chain.advance_blocks(1)
    (unlocked,) = chain.delegation_records(provider, target)
    assert (unlocked.locked, unlocked.energy) == (False, 15 * TRX)


def test_lock_zero_means_three_days(chain: Chain) -> None:
    provider, target = funded(chain)
    txid = chain.delegate(provider, target, 5 * TRX, lock=True)
    chain.advance_blocks(1)
    tx = chain.transaction(txid)
    assert tx is not None and tx.lock_period == 0  # as sent
    (record,) = chain.delegation_records(provider, target)
    expected = chain.block_timestamp_ms(chain.head() - 1) + DEFAULT_LOCK_PERIOD * 3000
    assert record.expire_energy_ms == expected
    with pytest.raises(ValueError, match="remaining"):
        chain.delegate(provider, target, 5 * TRX, lock=True, lock_period=10)


def test_bandwidth_delegation_is_not_energy(chain: Chain) -> None:
    provider = chain.new_account(bandwidth_stake_sun=100 * TRX)
    target = chain.new_account()
    chain.delegate(provider, target, 10 * TRX, resource="BANDWIDTH")
    chain.advance_blocks(1)
    assert chain.energy_limit(target) == 0
    assert chain.net_limit(target) > 0
    assert chain.delegated_sun(provider, target) == 0
    assert chain.delegated_sun(provider, target, "BANDWIDTH") == 10 * TRX


# -- solid view ---------------------------------------------------------------------------------


def test_solid_view_lags_until_the_block_is_solid(chain: Chain) -> None:
    provider, target = funded(chain)
    chain.delegate(provider, target, 40 * TRX, lock=True, lock_period=1000)
    chain.advance_blocks(1)
    solid = chain.account(target, solid=True)
    assert solid is not None and solid.energy.acquired == 0
    assert chain.delegation_records(provider, target, solid=True) == []
    chain.advance_blocks(SOLID_DEPTH)
    solid = chain.account(target, solid=True)
    assert solid is not None and solid.energy.acquired == 40 * TRX
    assert chain.delegation_records(provider, target, solid=True)[0].energy == 40 * TRX
    chain.delegate(provider, target, 5 * TRX)
    chain.advance_blocks(1)
    assert [r.energy for r in chain.delegation_records(provider, target, solid=True)] == [40 * TRX]
    assert [r.energy for r in chain.delegation_records(provider, target)] == [5 * TRX, 40 * TRX]


# -- drift --------------------------------------------------------------------------------------


def test_drift_is_deterministic_per_seed_and_independent_of_reads() -> None:
    def weights(seed: int, reads_every: int) -> list[int]:
        chain = Chain(seed=seed, drift_per_block=0.001, speed=0)
        out = []
        for block in range(1, 61):
            chain.clock.advance(BLOCK_TIME)
            if block % reads_every == 0:
                out.append((block, chain.total_energy_weight))
        return [w for b, w in out if b % 6 == 0]

    assert weights(3, 1) == weights(3, 6)
    assert weights(3, 1) != weights(4, 1)
    assert len(set(weights(3, 1))) > 1
    assert all(abs(w / 18_971_780_957 - 1) < 0.06 for w in weights(3, 1))


def test_no_drift_keeps_the_weight_fixed() -> None:
    chain = Chain(total_energy_weight=1_000_000)
    chain.clock.advance(86_400)
    assert chain.total_energy_weight == 1_000_000


# -- validation ---------------------------------------------------------------------------------


def test_delegate_validation(chain: Chain) -> None:
    provider, target = funded(chain, 100)
    stranger = chain.new_address()
    cases = [
        ((provider, target, 999_999), {}, "1 TRX"),
        ((provider, provider, 5 * TRX), {}, "same as ownerAddress"),
        ((provider, stranger, 5 * TRX), {}, "not exists"),
        ((stranger, target, 5 * TRX), {}, "not exists"),
        ((provider, "Tbad", 5 * TRX), {}, "Invalid receiverAddress"),
        ((provider, target, 101 * TRX), {}, "available"),
        ((provider, target, 5 * TRX), {"resource": "TRON_POWER"}, "ResourceCode"),
        ((provider, target, 5 * TRX), {"resource": "BANDWIDTH"}, "available"),
        ((provider, target, 5 * TRX), {"lock": True, "lock_period": -1}, "negative"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            chain.delegate(*args, **kwargs)  # type: ignore[arg-type]


def test_pending_delegations_reserve_the_owner_stake(chain: Chain) -> None:
    provider, target = funded(chain, 100)
    chain.delegate(provider, target, 60 * TRX)
    with pytest.raises(ValueError, match="available"):
        chain.delegate(provider, target, 60 * TRX)
    chain.advance_blocks(1)
    with pytest.raises(ValueError, match="available"):
        chain.delegate(provider, target, 41 * TRX)
    chain.delegate(provider, target, 40 * TRX)


# -- scale --------------------------------------------------------------------------------------


@pytest.mark.slow  # > 2 s: outside the quick developer loop
def test_ten_thousand_delegations_stay_bounded() -> None:
    # Speed is a benchmark figure, not an assertion (a shared machine makes timings flaky);
    # what must hold is that nothing is left behind once every delegation is solid.
    chain = Chain(speed=0)
    provider = chain.new_account(energy_stake_sun=10**9 * TRX)
    targets = [chain.new_account() for _ in range(10_000)]
    txids = [chain.delegate(provider, target, 65 * TRX) for target in targets]
    chain.advance_blocks(SOLID_DEPTH + 1)
    assert all(chain.tx_state(txid) == "solid" for txid in txids[::97])
    assert not chain._unsolid and not chain._unsolid_by_address
    assert not chain._due


def test_solid_view_never_shows_negative_stake_after_a_short_lock_merges(chain: Chain) -> None:
    provider, target = funded(chain)
    chain.delegate(provider, target, 10 * TRX, lock=True, lock_period=2)
    chain.advance_blocks(5)
    chain.undelegate(provider, target, 4 * TRX)  # merges the expired lock into unlocked
    chain.advance_blocks(1)
    assert [(r.locked, r.energy) for r in chain.delegation_records(provider, target)] == [
        (False, 6 * TRX)
    ]
    solid = chain.delegation_records(provider, target, solid=True)
    assert all(r.energy >= 0 for r in solid)
    chain.advance_blocks(SOLID_DEPTH)
    assert chain.delegation_records(provider, target, solid=True) == chain.delegation_records(
        provider, target
    )
