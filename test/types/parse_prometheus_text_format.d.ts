// Types for parse-prometheus-text-format (it ships none): the prom2json-shaped result, values as
// the strings of the exposition text.

declare module "parse-prometheus-text-format" {
    export interface PrometheusSample {
        readonly labels?: Readonly<Record<string, string>>;
        readonly value?: string;
        /** Histograms: cumulative count per upper bound ("+Inf" included). */
        readonly buckets?: Readonly<Record<string, string>>;
        readonly count?: string;
        readonly sum?: string;
    }
    export interface PrometheusFamily {
        readonly name: string;
        readonly help: string;
        readonly type: "COUNTER" | "GAUGE" | "HISTOGRAM" | "SUMMARY" | "UNTYPED";
        readonly metrics: readonly PrometheusSample[];
    }
    export default function parsePrometheusTextFormat(text: string): PrometheusFamily[];
}
