{{/*
The services' TOML configuration. Strings are written with toJson: a JSON
string is a valid TOML basic string. Credentials are not here: the pods get
them as IDP__* environment variables from the Secret, which override the
file (database URLs, cache URL, Kafka SASL).
*/}}
{{- define "spid-idp.configToml" -}}
{{- $c := .Values.config -}}
# Rendered by the spid-idp chart ({{ include "spid-idp.chart" . }}). Do not edit in the cluster.
mode = {{ $c.mode | toJson }}
public_url = {{ $c.publicUrl | toJson }}

[database]
# url: per service, from the Secret (IDP__<SERVICE>__DATABASE_URL)
max_connections = {{ $c.database.maxConnections | int }}
connect_timeout_secs = {{ $c.database.connectTimeoutSecs | int }}

[bus]
kind = "kafka"
brokers = {{ $c.bus.brokers | toJson }}
timeout_secs = {{ $c.bus.timeoutSecs | int }}

[bus.properties]
{{- $props := deepCopy ($c.bus.properties | default dict) }}
{{- if $c.bus.sasl.enabled }}
{{- $_ := set $props "security.protocol" $c.bus.sasl.securityProtocol }}
{{- $_ := set $props "sasl.mechanism" $c.bus.sasl.mechanism }}
# sasl.username, sasl.password: from the Secret (IDP__BUS__PROPERTIES)
{{- end }}
{{- range $k := keys $props | sortAlpha }}
{{ $k | toJson }} = {{ index $props $k | toString | toJson }}
{{- end }}

[cache]
# url: from the Secret (IDP__CACHE__URL)

[telemetry]
log_format = {{ $c.telemetry.logFormat | toJson }}
log_level = {{ $c.telemetry.logLevel | toJson }}
{{- with $c.telemetry.otlpEndpoint }}
otlp_endpoint = {{ . | toJson }}
{{- end }}

[audit]
keys_dir = {{ include "spid-idp.auditKeysPath" . | toJson }}
retention_months = {{ $c.audit.retentionMonths | int }}
evidence_retention_years = {{ $c.audit.evidenceRetentionYears | int }}
{{- with $c.audit.tsaUrl }}
tsa_url = {{ . | toJson }}
{{- end }}
job_interval_secs = {{ $c.audit.jobIntervalSecs | int }}

[registration]
idp_code = {{ $c.registration.idpCode | toJson }}
argon2_memory_kib = {{ $c.registration.argon2MemoryKib | int }}
argon2_iterations = {{ $c.registration.argon2Iterations | int }}
argon2_parallelism = {{ $c.registration.argon2Parallelism | int }}
contact_code_minutes = {{ $c.registration.contactCodeMinutes | int }}
evidence_keys_dir = {{ include "spid-idp.evidenceKeysPath" . | toJson }}
{{- with $c.registration.sources }}
{{- with .agenziaEntrateUrl }}
agenzia_entrate_url = {{ . | toJson }}
{{- end }}
{{- with .scipafiUrl }}
scipafi_url = {{ . | toJson }}
{{- end }}
{{- with .documentRegistryUrl }}
document_registry_url = {{ . | toJson }}
{{- end }}
{{- end }}
{{- if .Values.sourcesClient.existingSecret }}
sources_client_certificate = "/etc/spid-idp-sources/client.pem"
sources_client_key = "/etc/spid-idp-sources/client.key"
{{- end }}
{{- if .Values.signatureTrust.existingConfigMap }}
signature_trust_file = "/etc/spid-idp-trust/qualified-cas.pem"
{{- end }}

[saml]
keys_dir = {{ include "spid-idp.samlKeysPath" . | toJson }}
# Bootstrap Italia, installed in the image by deploy/Dockerfile.
assets_dir = "/usr/share/spid-idp/bootstrap-italia"
{{- with $c.saml }}
trusted_proxies = {{ .trustedProxies | default list | toJson }}
organization_name = {{ .organizationName | toJson }}
{{- end }}

[otp]
keys_dir = {{ include "spid-idp.otpKeysPath" . | toJson }}
code_validity_secs = {{ $c.otp.codeValiditySecs | int }}
max_attempts = {{ $c.otp.maxAttempts | int }}
codes_per_identity = {{ $c.otp.codesPerIdentity | int }}
codes_per_address = {{ $c.otp.codesPerAddress | int }}
rate_window_secs = {{ $c.otp.rateWindowSecs | int }}
totp_issuer = {{ $c.otp.totpIssuer | toJson }}
{{- with $c.delivery }}

[delivery]
max_attempts = {{ .maxAttempts | int }}
retry_base_secs = {{ .retryBaseSecs | int }}
retry_max_secs = {{ .retryMaxSecs | int }}
lease_secs = {{ .leaseSecs | int }}
concurrency = {{ .concurrency | int }}
{{- range $channel := list "email" "pec" }}
{{- $m := index $c.delivery $channel }}
{{- if $m.host }}

[delivery.{{ $channel }}]
host = {{ $m.host | toJson }}
port = {{ $m.port | int }}
tls = {{ $m.tls | toJson }}
from = {{ $m.from | toJson }}
{{- with $m.username }}
username = {{ . | toJson }}
{{- end }}
{{- end }}
{{- end }}
{{- with .sms }}
{{- if .url }}

[delivery.sms]
url = {{ .url | toJson }}
format = {{ .format | toJson }}
to_field = {{ .toField | toJson }}
text_field = {{ .textField | toJson }}
sender_field = {{ .senderField | toJson }}
reference_field = {{ .referenceField | toJson }}
sender = {{ .sender | toJson }}
auth_header = {{ .authHeader | toJson }}
{{- end }}
{{- end }}
{{- end }}
{{- $root := . }}
{{- $services := include "spid-idp.services" . | fromJson }}
{{- range $key := list "identityManager" "authnGateway" "otpService" "auditLog" "notification" }}
{{- $svc := index $services $key }}
{{- $v := include "spid-idp.serviceValues" (dict "root" $root "key" $key) | fromJson }}

[{{ $svc.section }}]
grpc_listen = {{ include "spid-idp.listen" (dict "host" $c.listenHost "port" $v.ports.grpc) | toJson }}
http_listen = {{ include "spid-idp.listen" (dict "host" $c.listenHost "port" $v.ports.http) | toJson }}
grpc_url = {{ printf "http://%s.%s.svc:%d" (include "spid-idp.serviceName" (dict "root" $root "key" $key)) $root.Release.Namespace ($v.ports.grpc | int) | toJson }}
{{- end }}
{{- with $c.extraToml }}

{{ . }}
{{- end }}
{{- end -}}

{{/* host:port, with brackets around an IPv6 host. */}}
{{- define "spid-idp.listen" -}}
{{- if contains ":" .host -}}
{{- printf "[%s]:%d" .host (.port | int) -}}
{{- else -}}
{{- printf "%s:%d" .host (.port | int) -}}
{{- end -}}
{{- end -}}

{{/* The file indented for a ConfigMap's block scalar, blank lines kept empty. */}}
{{- define "spid-idp.configTomlIndented" -}}
{{- regexReplaceAll "(?m)^[ ]+$" (include "spid-idp.configToml" . | nindent 4) "" -}}
{{- end -}}

{{/* Where audit-log finds its key material. */}}
{{- define "spid-idp.auditKeysPath" -}}
/etc/spid-idp-audit-keys
{{- end -}}

{{/* Where identity-manager finds the evidence keys. */}}
{{- define "spid-idp.evidenceKeysPath" -}}
/etc/spid-idp-evidence-keys
{{- end }}

{{/* The Secret holding the evidence keys. */}}
{{- define "spid-idp.evidenceKeysSecret" -}}
{{- .Values.evidenceKeys.existingSecret | default (printf "%s-evidence-keys" (include "spid-idp.fullname" .)) -}}
{{- end }}

{{/* Where otp-service finds its key material. */}}
{{- define "spid-idp.otpKeysPath" -}}
/etc/spid-idp-otp-keys
{{- end -}}

{{/* The Secret holding the OTP key material. */}}
{{- define "spid-idp.otpKeysSecret" -}}
{{- .Values.otpKeys.existingSecret | default (printf "%s-otp-keys" (include "spid-idp.fullname" .)) -}}
{{- end -}}

{{/* Where authn-gateway finds its SAML signing key and certificate. */}}
{{- define "spid-idp.samlKeysPath" -}}
/etc/spid-idp-saml-keys
{{- end -}}

{{/* The Secret holding the SAML signing key material. */}}
{{- define "spid-idp.samlKeysSecret" -}}
{{- .Values.samlKeys.existingSecret | default (printf "%s-saml-keys" (include "spid-idp.fullname" .)) -}}
{{- end -}}

{{/* The Secret holding the audit key material. */}}
{{- define "spid-idp.auditKeysSecret" -}}
{{- .Values.auditKeys.existingSecret | default (printf "%s-audit-keys" (include "spid-idp.fullname" .)) -}}
{{- end -}}
