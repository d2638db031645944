/**
 * Reads figures out of a server's /metrics (Prometheus text format), for what a benchmark
 * cannot see from outside the process.
 */

/**
 * The sum of every sample named `sample` (any labels): the whole group's value when the text
 * is a worker group's aggregate. 0 when there is none.
 */
export function sampleSum(text: string, sample: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(sample) || (line[sample.length] !== '{' && line[sample.length] !== ' ')) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) sum += value;
  }
  return sum;
}
