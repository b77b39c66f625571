import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { DatasetSchema } from "../src/gen/ferry/v1/dataset_pb";
import { coveringDataset } from "../src/source";

const at = (name: string, path: string) => create(DatasetSchema, { id: `d-${name}`, name, path });

test("a path resolves to the deepest dataset holding it, and the rest of the path", () => {
  const datasets = [at("projects", "projects"), at("genome", "projects/genome"), at("gen", "projects/gen")];
  assert.deepEqual(
    (({ dataset, prefix }) => [dataset.name, prefix])(coveringDataset(datasets, "/projects/genome/raw/a")!),
    ["genome", "raw/a"],
  );
  assert.equal(coveringDataset(datasets, "projects/genome")!.prefix, "");
  assert.equal(coveringDataset(datasets, "projects/genome/")!.dataset.name, "genome");
  // A name that only starts like a dataset's path is not inside it.
  assert.equal(coveringDataset(datasets, "projects/genomes/x")!.dataset.name, "projects");
  assert.equal(coveringDataset([at("genome", "projects/genome")], "elsewhere"), null);
});
