use ferry_proto::v1::{self as pb, policy_service_server::PolicyService};
use tonic::{Request, Response, Status};

use crate::convert::{self, POLICY_MUTABLE_FIELDS};
use crate::{
    domain::{
        name::{Name, Ref},
        page::PageRequest,
    },
    error::Error,
    service::Catalogue,
};

const IMMUTABLE: &[&str] = &["id", "name", "create_time", "update_time"];

pub struct PolicyApi {
    catalogue: Catalogue,
}

impl PolicyApi {
    pub fn new(catalogue: Catalogue) -> Self {
        PolicyApi { catalogue }
    }
}

#[tonic::async_trait]
impl PolicyService for PolicyApi {
    async fn create_policy(
        &self,
        request: Request<pb::CreatePolicyRequest>,
    ) -> Result<Response<pb::Policy>, Status> {
        let p = request
            .into_inner()
            .policy
            .ok_or_else(|| Error::invalid("policy", "required"))?;
        let name = Name::parse("policy.name", &p.name)?;
        let fields = convert::policy_fields(&p, None)?;
        let policy = self
            .catalogue
            .create_policy(name, &fields)
            .await
            .map_err(|e| e.within("policy"))?;
        Ok(Response::new(convert::policy_to_pb(policy)))
    }

    async fn get_policy(
        &self,
        request: Request<pb::GetPolicyRequest>,
    ) -> Result<Response<pb::Policy>, Status> {
        let r = Ref::parse("policy", &request.into_inner().policy)?;
        let policy = self.catalogue.get_policy(&r).await?;
        Ok(Response::new(convert::policy_to_pb(policy)))
    }

    async fn list_policies(
        &self,
        request: Request<pb::ListPoliciesRequest>,
    ) -> Result<Response<pb::ListPoliciesResponse>, Status> {
        let req = request.into_inner();
        let page = PageRequest::parse(req.page_size, &req.page_token)?;
        let dataset = (!req.dataset.is_empty())
            .then(|| Ref::parse("dataset", &req.dataset))
            .transpose()?;
        let policies = self
            .catalogue
            .list_policies(dataset.as_ref(), &page)
            .await?;
        Ok(Response::new(pb::ListPoliciesResponse {
            policies: policies
                .items
                .into_iter()
                .map(convert::policy_to_pb)
                .collect(),
            next_page_token: policies.next_token,
        }))
    }

    async fn update_policy(
        &self,
        request: Request<pb::UpdatePolicyRequest>,
    ) -> Result<Response<pb::Policy>, Status> {
        let req = request.into_inner();
        let p = req
            .policy
            .ok_or_else(|| Error::invalid("policy", "required"))?;
        let target = convert::target("policy", &p.id, &p.name)?;
        let paths = convert::check_mask(req.update_mask, POLICY_MUTABLE_FIELDS, IMMUTABLE)?;
        let fields = convert::policy_fields(&p, Some(&paths))?;
        let policy = self
            .catalogue
            .update_policy(&target, &fields)
            .await
            .map_err(|e| e.within("policy"))?;
        Ok(Response::new(convert::policy_to_pb(policy)))
    }

    async fn delete_policy(
        &self,
        request: Request<pb::DeletePolicyRequest>,
    ) -> Result<Response<pb::DeletePolicyResponse>, Status> {
        let r = Ref::parse("policy", &request.into_inner().policy)?;
        self.catalogue.delete_policy(&r).await?;
        Ok(Response::new(pb::DeletePolicyResponse {}))
    }
}
