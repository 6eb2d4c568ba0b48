// Publishes N shop orders to jf.ingest.orders with the official nats.js
// client, with Nats-Msg-Id set for de-duplication, then one in bulk mode.
const { connect, StringCodec, headers } = require("nats");

async function main() {
  const n = parseInt(process.argv[2] || "100", 10);
  const nc = await connect({ servers: process.env.NATS_URL });
  const js = nc.jetstream();
  const sc = StringCodec();
  for (let i = 0; i < n; i++) {
    const rec = { order_id: `js-${i}`, customer_id: "c-js", amount: i, currency: "USD", country: "US", ts: "2026-10-01T10:00:00Z" };
    await js.publish("jf.ingest.orders", sc.encode(JSON.stringify(rec)), { msgID: rec.order_id });
  }
  const h = headers();
  h.set("Jf-Records", "2");
  const bulk = [0, 1].map((i) => JSON.stringify({ order_id: `js-bulk-${i}`, amount: i })).join("\n");
  await js.publish("jf.ingest.orders", sc.encode(bulk), { msgID: "js-bulk", headers: h });
  await nc.drain();
  console.log(`published ${n + 1} messages`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
