# nomarch's controller on Nomad: two instances on distinct hosts. Both run; the etcd lease makes
# one of them the leader and the other a warm standby that takes over within --lease-ttl.
#
# Before `nomad job run deploy/nomad/nomarch.nomad.hcl`:
#   1. nomarch installed on the clients: `cargo install --locked --path controller --root /usr/local`
#      (the exec driver sees /usr/local/bin/nomarch).
#   2. A host volume "nomarch-git-cache" in each client's config (the git sources' mirrors).
#   3. The ACL policy attached to this job's workload identity:
#        nomad acl policy apply -namespace default -job nomarch nomarch deploy/acl/nomad-policy.hcl
#   4. The job's variable with the addresses and the secrets it must not carry in its spec:
#        nomad var put nomad/jobs/nomarch \
#          etcd_endpoints=http://10.0.0.1:2379,http://10.0.0.2:2379,http://10.0.0.3:2379 \
#          consul_addr=http://127.0.0.1:8500 consul_token=... etcd_user=nomarch etcd_password=...
#      (consul_token, etcd_user and etcd_password may be left out where ACLs or auth are off).
# deploy/nomad/nomarch.nomad.json is this job in the API's JSON form (`nomad job run -output`);
# a test keeps the two in step.

job "nomarch" {
  type        = "service"
  datacenters = ["*"]

  group "controller" {
    count = 2

    # Two controllers on one host would both die with it.
    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    network {
      port "http" {
        static = 9430
      }
    }

    volume "git-cache" {
      type      = "host"
      source    = "nomarch-git-cache"
      read_only = false
    }

    # One at a time: the standby keeps the lease while the other restarts.
    update {
      max_parallel     = 1
      min_healthy_time = "10s"
      healthy_deadline = "2m"
    }

    service {
      name     = "nomarch"
      port     = "http"
      provider = "consul"
      tags     = ["metrics", "prometheus.io/scrape=true", "prometheus.io/path=/metrics"]

      # /readyz answers 200 on the leader and the standby once their caches are listed.
      check {
        name     = "ready"
        type     = "http"
        path     = "/readyz"
        interval = "10s"
        timeout  = "2s"
      }

      # /healthz is the process itself; a hung controller is restarted.
      check {
        name     = "alive"
        type     = "http"
        path     = "/healthz"
        interval = "10s"
        timeout  = "2s"

        check_restart {
          limit = 3
          grace = "30s"
        }
      }
    }

    task "controller" {
      driver = "exec"

      config {
        command = "/usr/local/bin/nomarch"
        args = [
          "controller",
          "--listen", "0.0.0.0:${NOMAD_PORT_http}",
          "--id", "${node.unique.name}",
          "--git-cache", "/var/lib/nomarch/git",
        ]
      }

      # SIGTERM lets reconciles in flight finish (each Nomad or Consul request has a 15 s
      # deadline) and gives the lease up; kill_timeout leaves room for that before SIGKILL.
      kill_signal  = "SIGTERM"
      kill_timeout = "45s"

      volume_mount {
        volume      = "git-cache"
        destination = "/var/lib/nomarch/git"
      }

      # NOMAD_TOKEN is the workload identity, which carries the policy attached to this job.
      identity {
        env = true
      }

      env {
        NOMAD_ADDR = "http://${attr.unique.network.ip-address}:4646"
        RUST_LOG   = "info"
      }

      # Addresses and secrets from the job's own variable (readable by its workload identity
      # without any policy); written to the secrets dir, never into the job spec.
      template {
        destination = "secrets/nomarch.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/nomarch" -}}
          NOMARCH_ETCD_ENDPOINTS={{ .etcd_endpoints }}
          CONSUL_HTTP_ADDR={{ .consul_addr }}
          {{ with .consul_token }}CONSUL_HTTP_TOKEN={{ . }}{{ end }}
          {{ with .etcd_user }}NOMARCH_ETCD_USER={{ . }}{{ end }}
          {{ with .etcd_password }}NOMARCH_ETCD_PASSWORD={{ . }}{{ end }}
          {{- end }}
        EOT
      }

      resources {
        cpu    = 500
        memory = 512
      }
    }
  }
}
