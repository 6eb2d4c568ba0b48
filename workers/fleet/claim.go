package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/subjects"
)

// claimLoop divides the dataset's partitions between the replicas that
// serve it, through leases in the partition bucket (JetStream KV with
// compare-and-set; nothing home-made decides who owns what):
//
//   - every replica renews a presence key, so each knows how many serve
//     the dataset and takes a fair share, ceil(partitions/replicas);
//   - a replica claims a free partition with Create, which succeeds only
//     if no live lease exists, and renews its leases with Update on the
//     revision it last wrote; a failed renewal means it lost the lease,
//     and it stops the partition at once;
//   - a replica that dies stops renewing: its leases age out after the
//     TTL and the others claim them, opening the partition's state where
//     the dead one left it (the data dir is shared);
//   - a replica above its share (a new one joined) drains a partition,
//     flushes its state, and deletes the lease for another to claim.
//
// Two owners of one partition are excluded twice: by the lease, and by
// DuckDB's lock on the partition's state file, which a replica that lost
// its lease while still running holds until it stops the partition.
func (s *partitionSet) claimLoop(ctx context.Context) error {
	ttl := s.f.cfg.LeaseTTL
	kv, err := s.leaseBucket(ctx, ttl)
	if err != nil {
		return err
	}
	revs := map[int]uint64{}
	defer s.releaseAll(kv, revs)
	t := time.NewTicker(ttl / 4)
	defer t.Stop()
	for {
		if err := s.reconcile(ctx, kv, revs); err != nil && ctx.Err() == nil {
			s.log.Warn().Err(err).Msg("partition leases")
		}
		stop, err := s.waitOnce(ctx, t.C)
		if stop {
			return err
		}
	}
}

func (s *partitionSet) leaseBucket(ctx context.Context, ttl time.Duration) (jetstream.KeyValue, error) {
	js, err := jetstream.New(s.f.cfg.Conn)
	if err != nil {
		return nil, err
	}
	if s.f.cfg.Streams.BindOnly {
		return subjects.BindBucket(ctx, js, subjects.PartitionBucket)
	}
	for attempt := 1; ; attempt++ {
		kv, err := js.CreateOrUpdateKeyValue(ctx, subjects.PartitionsKV(s.f.cfg.Streams, ttl))
		if err == nil {
			return kv, nil
		}
		s.log.Warn().Err(err).Int("attempt", attempt).Msg("waiting for the partition bucket")
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(time.Duration(attempt)*200*time.Millisecond, 5*time.Second)):
		}
	}
}

// reconcile renews this replica's presence and leases, gives up
// partitions above its share, and claims free ones up to it.
func (s *partitionSet) reconcile(ctx context.Context, kv jetstream.KeyValue, revs map[int]uint64) error {
	ds := s.ds.Name
	if _, err := kv.Put(ctx, subjects.KeyPartitionMember(ds, s.owner), []byte(s.owner)); err != nil {
		return fmt.Errorf("presence: %w", err)
	}
	var errs []error
	for _, p := range s.owned() {
		rev, err := kv.Update(ctx, subjects.KeyPartitionLease(ds, p), []byte(s.owner), revs[p])
		if err != nil {
			s.log.Warn().Err(err).Int("partition", p).Msg("lease lost; stopping the partition")
			delete(revs, p)
			errs = append(errs, s.stopPartition(ctx, p))
			continue
		}
		revs[p] = rev
	}
	members, err := s.countMembers(ctx, kv)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	share := (s.n + members - 1) / members
	owned := s.owned()
	for len(owned) > share {
		p := owned[len(owned)-1]
		owned = owned[:len(owned)-1]
		s.log.Info().Int("partition", p).Int("share", share).Msg("handing a partition over")
		errs = append(errs, s.stopPartition(ctx, p))
		errs = append(errs, kv.Delete(ctx, subjects.KeyPartitionLease(ds, p), jetstream.LastRevision(revs[p])))
		delete(revs, p)
	}
	for p := 0; p < s.n && len(owned) < share; p++ {
		if _, mine := revs[p]; mine {
			continue
		}
		rev, err := kv.Create(ctx, subjects.KeyPartitionLease(ds, p), []byte(s.owner))
		if err != nil {
			continue // someone holds it
		}
		if err := s.startPartition(ctx, p); err != nil {
			// Its state may still be held by an owner that lost the lease
			// but has not stopped yet: give it back and try again later.
			s.log.Warn().Err(err).Int("partition", p).Msg("claimed partition did not start; releasing it")
			_ = kv.Delete(ctx, subjects.KeyPartitionLease(ds, p), jetstream.LastRevision(rev))
			errs = append(errs, err)
			continue
		}
		s.log.Info().Int("partition", p).Int("share", share).Int("replicas", members).Msg("claimed partition")
		revs[p] = rev
		owned = append(owned, p)
	}
	return errors.Join(errs...)
}

func (s *partitionSet) countMembers(ctx context.Context, kv jetstream.KeyValue) (int, error) {
	lister, err := kv.ListKeysFiltered(ctx, subjects.PartitionMembers(s.ds.Name))
	if err != nil {
		return 0, err
	}
	n := 0
	for range lister.Keys() {
		n++
	}
	return max(n, 1), nil
}

// releaseAll stops every owned partition and deletes its lease and this
// replica's presence, so the others take over without waiting for the
// TTL.
func (s *partitionSet) releaseAll(kv jetstream.KeyValue, revs map[int]uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_ = s.stopAll(ctx)
	for p, rev := range revs {
		_ = kv.Delete(ctx, subjects.KeyPartitionLease(s.ds.Name, p), jetstream.LastRevision(rev))
	}
	_ = kv.Delete(ctx, subjects.KeyPartitionMember(s.ds.Name, s.owner))
}
