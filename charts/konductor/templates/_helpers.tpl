{{/*
Chart name, truncated to the 63 characters a DNS label allows.
*/}}
{{- define "konductor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name of the release's objects. The release name is used as is when it already
contains the chart name.
*/}}
{{- define "konductor.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A name derived from the fullname with a suffix, kept within 63 characters.
Usage: include "konductor.suffixed" (list . "ca")
*/}}
{{- define "konductor.suffixed" -}}
{{- $ctx := index . 0 }}
{{- $suffix := index . 1 }}
{{- printf "%s-%s" (include "konductor.fullname" $ctx | trunc (int (sub 62 (len $suffix))) | trimSuffix "-") $suffix }}
{{- end }}

{{- define "konductor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "konductor.labels" -}}
helm.sh/chart: {{ include "konductor.chart" . }}
{{ include "konductor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: konductor
{{- end }}

{{- define "konductor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "konductor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: manager
{{- end }}

{{/*
The ServiceAccount the manager runs as: the chart's own, or the namespace's "default" when
serviceAccount.enabled is false (bring your own by binding it yourself).
*/}}
{{- define "konductor.serviceAccountName" -}}
{{- if .Values.serviceAccount.enabled }}
{{- include "konductor.fullname" . }}
{{- else }}
{{- print "default" }}
{{- end }}
{{- end }}

{{- define "konductor.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{- define "konductor.agentImage" -}}
{{- printf "%s:%s" .Values.agentImage.repository (.Values.agentImage.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{/* Service of the webhook and the agent API. */}}
{{- define "konductor.serviceName" -}}
{{- include "konductor.fullname" . }}
{{- end }}

{{/* The Secret holding tls.crt, tls.key and ca.crt (written by cert-manager or by the manager). */}}
{{- define "konductor.tlsSecretName" -}}
{{- include "konductor.suffixed" (list . "webhook-tls") }}
{{- end }}

{{- define "konductor.servingCertificateName" -}}
{{- include "konductor.suffixed" (list . "serving") }}
{{- end }}

{{/* Port of a Go-style bind address (":8080", "0.0.0.0:8080"); empty when disabled ("0"). */}}
{{- define "konductor.portOf" -}}
{{- $addr := toString . }}
{{- if regexMatch ":[0-9]+$" $addr }}
{{- regexFind "[0-9]+$" $addr }}
{{- end }}
{{- end }}

{{- define "konductor.metricsPort" -}}
{{- include "konductor.portOf" .Values.controller.args.metricsBindAddress }}
{{- end }}

{{- define "konductor.healthPort" -}}
{{- include "konductor.portOf" .Values.controller.args.healthProbeBindAddress }}
{{- end }}

{{/*
Namespaces never mutated nor checked: kube-system and the release's own namespace (the manager
must be able to start even when its webhook is down).
*/}}
{{- define "konductor.namespaceSelector" -}}
{{- $user := .Values.webhook.namespaceSelector | default dict }}
{{- $exprs := list (dict "key" "kubernetes.io/metadata.name" "operator" "NotIn" "values" (list "kube-system" .Release.Namespace | uniq)) }}
{{- range ($user.matchExpressions | default list) }}
{{- $exprs = append $exprs . }}
{{- end }}
{{- $selector := dict "matchExpressions" $exprs }}
{{- with $user.matchLabels }}
{{- $_ := set $selector "matchLabels" . }}
{{- end }}
{{- toYaml $selector }}
{{- end }}

{{/*
CEL of the webhooks' matchConditions (the same strings as api/webhookConfiguration.ts and
api/admissionPolicies.ts; a chart test compares them).
*/}}
{{/* The object carries at least one konductor.io/ annotation. */}}
{{- define "konductor.matchAnnotationsExpression" -}}
has(object.metadata.annotations) && object.metadata.annotations.exists(k, k.startsWith('konductor.io/'))
{{- end }}

{{/* The managed label or a konductor.io/ annotation differs between object and oldObject. */}}
{{- define "konductor.metadataChangedExpression" -}}
object.metadata.?labels[?'konductor.io/managed'] != oldObject.metadata.?labels[?'konductor.io/managed'] || object.metadata.?annotations.orValue({}).exists(k, k.startsWith('konductor.io/') && object.metadata.?annotations[?k] != oldObject.metadata.?annotations[?k]) || oldObject.metadata.?annotations.orValue({}).exists(k, k.startsWith('konductor.io/') && !object.metadata.?annotations[?k].hasValue())
{{- end }}

{{/* Pods: a CREATE of an annotated pod (inject), or an UPDATE changing its konductor metadata (deny). */}}
{{- define "konductor.podRequestExpression" -}}
request.operation == 'UPDATE' ? ({{ include "konductor.metadataChangedExpression" . }}) : ({{ include "konductor.matchAnnotationsExpression" . }})
{{- end }}

{{/* Jobs and CronJobs: the object or its pod template carries a konductor.io/ annotation. */}}
{{- define "konductor.workloadAnnotationsExpression" -}}
[object.metadata.?annotations.orValue({}), object.?spec.?template.?metadata.?annotations.orValue({}), object.?spec.?jobTemplate.?spec.?template.?metadata.?annotations.orValue({})].exists(m, m.exists(k, k.startsWith('konductor.io/')))
{{- end }}

{{/* The user name the manager authenticates as: its ServiceAccount's. */}}
{{- define "konductor.managerUsername" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "konductor.serviceAccountName" .) }}
{{- end }}

{{/* Checks that fail rendering with a readable message instead of producing a broken release. */}}
{{- define "konductor.validate" -}}
{{- if and .Values.azure.enabled (not .Values.azure.credentials.useManagedIdentity) }}
{{- if not (or .Values.azure.credentials.existingSecret .Values.azure.credentials.clientSecret) }}
{{- fail "azure.credentials.useManagedIdentity=false needs azure.credentials.existingSecret or azure.credentials.clientSecret" }}
{{- end }}
{{- if not .Values.azure.credentials.clientId }}
{{- fail "azure.credentials.useManagedIdentity=false needs azure.credentials.clientId" }}
{{- end }}
{{- end }}
{{- if eq (include "konductor.healthPort" .) "" }}
{{- fail "controller.args.healthProbeBindAddress must be [host]:port (the probes need it), e.g. \":8081\"" }}
{{- end }}
{{- if eq (int .Values.webhook.port) (int .Values.agentApi.port) }}
{{- fail "webhook.port and agentApi.port must differ: admission has a listener of its own" }}
{{- end }}
{{- if and .Values.podMonitor.enabled (eq (include "konductor.metricsPort" .) "") }}
{{- fail "podMonitor.enabled=true needs controller.args.metricsBindAddress with a port, e.g. \":8080\"" }}
{{- end }}
{{- end }}

{{/*
The primitive kinds, read from their CRDs in files/crds/ (one file a kind, <plural>.sync.konductor.io.yaml):
a JSON list of {plural, singular}. Adding a kind adds its CRD file, and the lists below follow it (the
manager's RBAC rules, the status-writer and require-injection policies).
*/}}
{{- define "konductor.primitiveNames" -}}
{{- $names := list }}
{{- range $path, $_ := .Files.Glob "files/crds/*.yaml" }}
{{- $crd := $.Files.Get $path | fromYaml }}
{{- $spec := $crd.spec | default dict }}
{{- if ne (toString (default "" $spec.group)) "sync.konductor.io" }}
{{- fail (printf "%s is not a CustomResourceDefinition of sync.konductor.io" $path) }}
{{- end }}
{{- $names = append $names (pick $spec.names "plural" "singular") }}
{{- end }}
{{- toJson $names }}
{{- end }}

{{/*
The primitives' resources with a suffix, as a YAML flow list sorted by name: ["barriers", ...] or
["barriers/status", ...]. Usage: include "konductor.primitiveResources" (list . "/status")
*/}}
{{- define "konductor.primitiveResources" -}}
{{- $resources := list }}
{{- range include "konductor.primitiveNames" (index . 0) | fromJsonArray }}
{{- $resources = append $resources (printf "%s%s" .plural (index $ 1)) }}
{{- end }}
{{- $resources | sortAlpha | toJson }}
{{- end }}

{{/*
The primitive annotations (konductor.io/<singular>), sorted, as a CEL list's items: 'konductor.io/barrier', ...
*/}}
{{- define "konductor.primitiveAnnotations" -}}
{{- $annotations := list }}
{{- range include "konductor.primitiveNames" . | fromJsonArray }}
{{- $annotations = append $annotations (printf "'konductor.io/%s'" .singular) }}
{{- end }}
{{- $annotations | sortAlpha | join ", " }}
{{- end }}
