import "./dist/src/polyfills.js";
import { measureRoutedTasks } from "./dist/bench/mesh-routed.js";
const f = await measureRoutedTasks({ warmup: 3000, sequential: 1000, total: 200, window: 32, processes: Number(process.argv[2] ?? 2) });
console.log(JSON.stringify({ p50: f.routed_task_p50_ms, p99: f.routed_task_p99_ms, raw: f.raw_stream_rtt_p50_ms }));
process.exit(0);
