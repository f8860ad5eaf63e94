{{/*
Names, labels and the catalogue of the five services.
*/}}

{{- define "spid-idp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The release-wide prefix of every object name. Kept at most 40 characters so
that "<fullname>-identity-manager" (the longest) fits in a 63-character DNS
label.
*/}}
{{- define "spid-idp.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "spid-idp.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that never change for a release: used in selectors. */}}
{{- define "spid-idp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "spid-idp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "spid-idp.labels" -}}
helm.sh/chart: {{ include "spid-idp.chart" . }}
{{ include "spid-idp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: spid-idp
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
The five services. key: the values key under .Values.services; name: the
`idp` sub-command and the suffix of object names; section: the section of
the TOML configuration and of IDP__<SECTION>__* variables.
*/}}
{{- define "spid-idp.catalogue" -}}
identityManager:
  name: identity-manager
  section: identity_manager
authnGateway:
  name: authn-gateway
  section: authn_gateway
otpService:
  name: otp-service
  section: otp_service
auditLog:
  name: audit-log
  section: audit_log
notification:
  name: notification
  section: notification
{{- end -}}

{{/* The gRPC port idpctl assumes for a service (its default port). */}}
{{- define "spid-idp.defaultGrpcPort" -}}
{{- get (dict "identityManager" "50051" "authnGateway" "50052" "otpService" "50053" "auditLog" "50054" "notification" "50055") . -}}
{{- end -}}

{{/* The catalogue as a dict. */}}
{{- define "spid-idp.services" -}}
{{- include "spid-idp.catalogue" . | fromYaml | toJson -}}
{{- end -}}

{{/*
One service's effective values: .Values.serviceDefaults deep-merged under
.Values.services.<key>. Call with (dict "root" $ "key" "identityManager");
returns JSON (use fromJson).
*/}}
{{- define "spid-idp.serviceValues" -}}
{{- $own := index .root.Values.services .key | default dict -}}
{{- mergeOverwrite (deepCopy .root.Values.serviceDefaults) (deepCopy $own) | toJson -}}
{{- end -}}

{{/* Object name of one service: call with (dict "root" $ "key" "identityManager"). */}}
{{- define "spid-idp.serviceName" -}}
{{- $svc := index (include "spid-idp.services" .root | fromJson) .key -}}
{{- printf "%s-%s" (include "spid-idp.fullname" .root) $svc.name -}}
{{- end -}}

{{/* Selector labels of one service's pods: call with (dict "root" $ "key" ...). */}}
{{- define "spid-idp.componentSelectorLabels" -}}
{{- $svc := index (include "spid-idp.services" .root | fromJson) .key -}}
{{ include "spid-idp.selectorLabels" .root }}
app.kubernetes.io/component: {{ $svc.name }}
{{- end -}}

{{- define "spid-idp.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "spid-idp.secretName" -}}
{{- default (printf "%s-secrets" (include "spid-idp.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "spid-idp.configMapName" -}}
{{- printf "%s-config" (include "spid-idp.fullname" .) -}}
{{- end -}}

{{- define "spid-idp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "spid-idp.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Where the configuration file is mounted in every container. */}}
{{- define "spid-idp.configPath" -}}
/etc/spid-idp/idp.toml
{{- end -}}

{{/*
Refuses settings that the services would refuse at start-up anyway, so that
a bad value fails at `helm install` instead of in a crash loop.
*/}}
{{- define "spid-idp.validate" -}}
{{- $mode := .Values.config.mode -}}
{{- if not (has $mode (list "production" "development")) -}}
{{- fail (printf "config.mode: %q is not one of production, development" $mode) -}}
{{- end -}}
{{- $url := urlParse (required "config.publicUrl is required (the public https:// origin of authn-gateway)" .Values.config.publicUrl) -}}
{{- if and (eq $mode "production") (ne $url.scheme "https") -}}
{{- fail (printf "config.publicUrl: %q must be https:// in production" .Values.config.publicUrl) -}}
{{- end -}}
{{- if not $url.host -}}
{{- fail (printf "config.publicUrl: %q has no host" .Values.config.publicUrl) -}}
{{- end -}}
{{- $brokers := required "config.bus.brokers is required (host:port[,host:port])" .Values.config.bus.brokers -}}
{{- range splitList "," $brokers -}}
{{- if not (regexMatch "^[^:,\\s]+:[0-9]{1,5}$" (trim .)) -}}
{{- fail (printf "config.bus.brokers: %q is not host:port" (trim .)) -}}
{{- end -}}
{{- end -}}
{{- if not (has .Values.config.telemetry.logFormat (list "json" "text")) -}}
{{- fail (printf "config.telemetry.logFormat: %q is not one of json, text" .Values.config.telemetry.logFormat) -}}
{{- end -}}
{{- range $k, $v := .Values.config.bus.properties -}}
{{- if regexMatch "(?i)(password|secret|sasl\\.username|sasl\\.oauthbearer\\.client\\.secret|ssl\\.key\\.pem)" $k -}}
{{- fail (printf "config.bus.properties.%s: credentials must not be in the ConfigMap; use config.bus.sasl with the Secret (see docs/deployment.md)" $k) -}}
{{- end -}}
{{- end -}}
{{- $services := include "spid-idp.services" . | fromJson -}}
{{- range $key, $_ := .Values.services -}}
{{- if not (hasKey $services $key) -}}
{{- fail (printf "services.%s: unknown service (expected one of %s)" $key (keys $services | sortAlpha | join ", ")) -}}
{{- end -}}
{{- end -}}
{{- end -}}
