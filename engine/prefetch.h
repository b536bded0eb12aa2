// Prefetching for a batch: applying one scan-out reads a handful of entries scattered over large
// tables (the duplicate window's index, the (sku, store) stock entry, the store's distributor and
// its period stats), an event that moves goods in lines one (sku, location) entry per line, and
// each read waits for memory. A batch decodes its records ahead of applying
// them (connectors/ingest_batch.h) and asks the shard to prefetch what each will read, so those
// waits overlap instead of queueing behind one another.
//
// Only the entries a record's own fields name are prefetched. Those found through them (a store's
// distributor's period stats and active-store entries, through the store's assignment; the stock
// projection's sku slot and item, through the location's entry) were a second stage, some records
// later, until 2026-11-28: it cost more than it saved (README "Apply CPU").
//
// Prefetching is a hint: it reads state (never writes it) and changes no outcome. Same thread as the
// apply, like the shard itself. The functions are Shard::prefetch and ChannelLedger::prefetch_scan_out
// (engine/prefetch.cc).
#pragma once
