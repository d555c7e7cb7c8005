// Bundles each page script (static/src/*.js) into static/dist/, with the shared modules of
// static/src/lib/ inlined; copies uPlot's stylesheet next to them. Run by `npm run build`.
import { copyFile, mkdir, readdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const sourceDir = join(here, "src");
const outDir = join(here, "dist");

const pages = (await readdir(sourceDir)).filter((name) => name.endsWith(".js")).map((name) => join(sourceDir, name));

await rm(outDir, { recursive: true, force: true }); // stale bundles would be collected as well
await mkdir(outDir, { recursive: true });
await esbuild.build({
  entryPoints: pages,
  outdir: outDir,
  bundle: true,
  minify: true,
  format: "iife", // classic <script defer>: one self-contained file per page
  target: "es2020",
  sourcemap: false,
  legalComments: "none",
  logLevel: "info",
});
await copyFile(join(here, "..", "node_modules", "uplot", "dist", "uPlot.min.css"), join(outDir, "uPlot.min.css"));
