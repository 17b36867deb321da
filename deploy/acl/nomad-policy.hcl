# The Nomad ACL policy nomarch's controller and CLI need, and nothing more. Each rule names the
# API calls that need it (controller/src/clients/nomad.rs) and the Nomad source that checks it;
# controller/tests/deploy.rs holds this file against the calls the client makes.
#
#   nomad acl policy apply -namespace default -job nomarch nomarch deploy/acl/nomad-policy.hcl
# (attached to the controller job's workload identity), or for a token:
#   nomad acl policy apply nomarch deploy/acl/nomad-policy.hcl
#   nomad acl token create -name nomarch -policy nomarch

# Every namespace: nomarch serves objects in any namespace, and its event stream subscribes
# with namespace "*", which Nomad allows only with read-job in every namespace
# (nomad/event_endpoint.go validateACL). Name your namespaces instead of "*" to narrow it, and
# give the event stream's topics the same reach.
namespace "*" {
  capabilities = [
    # GET /v1/jobs (job cache, orphan sweep): nomad/job_endpoint.go Job.List
    "list-jobs",
    # GET /v1/job/:id, /v1/job/:id/allocations, /v1/job/:id/deployments (was a rollout
    # rolled back?), /v1/job/:id/deployment and /v1/deployment/:id (the rollout in status),
    # /v1/allocations, the Job, Allocation and Deployment event topics: Job.GetJob,
    # Job.Allocations, Job.Deployments, Job.LatestDeployment, Deployment.GetDeployment,
    # Alloc.List, event_endpoint.go validateNsOp; PUT /v1/validate/job (a NomadJob checked
    # before it is written): Job.Validate
    "read-job",
    # PUT /v1/job/:id (register), /v1/job/:id/plan, DELETE /v1/job/:id,
    # PUT /v1/job/:id/periodic/force (`nomarch run cronjob`) and
    # PUT /v1/deployment/promote/:id (`nomarch rollout promote`): Job.Register, Job.Plan,
    # Job.Deregister, periodic_endpoint.go Force (submit-job or dispatch-job),
    # deployment_endpoint.go Promote; PUT /v1/jobs/parse (a NomadJob's HCL):
    # command/agent/job_endpoint.go JobsParseRequest (parse-job or submit-job)
    "submit-job",
    # PUT /v1/allocation/:id/stop (healing): nomad/alloc_endpoint.go Alloc.Stop;
    # PUT /v1/client/allocation/:id/restart (`nomarch rollout restart`):
    # client/alloc_endpoint.go Allocations.Restart
    "alloc-lifecycle",
    # GET /v1/client/fs/logs/:alloc_id (`nomarch logs`): client/fs_endpoint.go logs
    # (read-logs or read-fs). The controller never reads logs; a token for people needs it.
    "read-logs",
  ]

  # GET /v1/var/:path: git credentials and webhook secrets named by a GitSource's secretRef and
  # webhookSecretRef (nomad/variables_endpoint.go). Keep those variables under nomarch/.
  variables {
    path "nomarch/*" {
      capabilities = ["read"]
    }
  }
}

# GET /v1/nodes (blocking query: hubs for pubs, node health) and GET /v1/node/:id (hub meta):
# nomad/node_endpoint.go Node.List, Node.GetNode.
node {
  policy = "read"
}
